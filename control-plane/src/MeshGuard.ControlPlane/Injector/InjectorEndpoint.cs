using System.Text.Json;
using System.Text.Json.Nodes;
using MeshGuard.ControlPlane.Common.Injection;
using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.ControlPlane.Injector;

/// <summary>
/// POST /inject on the webhook port: the Kubernetes API server's admission.k8s.io/v1 AdmissionReview for a
/// Pod in, the same review with a JSON Patch that adds the sidecar out (<see cref="SidecarInjector"/>). Every
/// pod is allowed; a document that is no AdmissionReview gets a 400, which the webhook's failure policy
/// (Ignore) turns into a pod admitted without a sidecar, never a blocked one.
/// </summary>
internal sealed partial class InjectorEndpoint(InjectionTemplate template, ILogger<InjectorEndpoint> logger)
{
    public const string Path = "/inject";

    // Kubernetes objects are at most about 1.5 MiB (etcd's limit), and a review holds one.
    private const long MaxReviewBytes = 3 * 1024 * 1024;

    public async Task HandleAsync(HttpContext context)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = MaxReviewBytes;
        }
        JsonObject response;
        InjectionDecision decision;
        try
        {
            var review = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            response = AdmissionReviews.Respond(review, template, out decision);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or BadHttpRequestException)
        {
            LogRefused(logger, e.Message);
            context.Response.StatusCode = e is BadHttpRequestException bad ? bad.StatusCode : StatusCodes.Status400BadRequest;
            await context.Response.WriteAsync($"meshguard: {e.Message}\n", context.RequestAborted);
            return;
        }
        var request = response["response"]!;
        LogDecision(logger, request["uid"]!.GetValue<string>(), decision.Inject, decision.Reason);
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(response.ToJsonString(), context.RequestAborted);
    }

    [LoggerMessage(EventId = 70, Level = LogLevel.Information, Message = "injection review {Uid}: inject={Inject} ({Reason})")]
    private static partial void LogDecision(ILogger logger, string uid, bool inject, string reason);

    [LoggerMessage(EventId = 71, Level = LogLevel.Warning, Message = "injection review refused: {Reason}")]
    private static partial void LogRefused(ILogger logger, string reason);
}
