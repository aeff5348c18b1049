using System.Net;
using MeshGuard.FlowLog;
using MeshGuard.Proxy.FlowLog;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Protocols;
using Yarp.ReverseProxy.Forwarder;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// The outbound listener's request handler: the app's plain HTTP (absolute-form through HTTP_PROXY, or by
/// Host) is resolved to a service, one of its endpoints is picked, and the request goes out over mTLS to
/// that endpoint's sidecar, which must present the identity the directory lists for it.
/// </summary>
internal sealed partial class OutboundHandler(
    IHttpForwarder forwarder, ServiceDirectory directory, FlowLogSink flows, WorkloadIdentity identity, TimeProvider time, ILogger<OutboundHandler> logger)
{
    private static readonly ForwarderRequestConfig RequestConfig = new()
    {
        Version = HttpVersion.Version20,
        VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        ActivityTimeout = TimeSpan.FromSeconds(100),
    };

    public async Task HandleAsync(HttpContext context)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var requestId = FlowFields.EnsureRequestId(context.Request);
        var traceParent = FlowFields.EnsureTraceParent(context.Request);
        var host = context.Request.Host.Value;
        if (string.IsNullOrEmpty(host))
        {
            await Refusal.WriteAsync(context, StatusCodes.Status400BadRequest, "meshguard: request has no Host\n");
            return;
        }
        // A port mapped to a service sends there whatever the Host; the HTTP proxy port routes by Host.
        var route = context.Features.Get<OutboundDestination>() is { } destination ? directory.Resolve(destination.Service) : directory.Resolve(host);
        if (route is null)
        {
            LogUnknownService(logger, host);
            await Refusal.WriteAsync(context, StatusCodes.Status502BadGateway, "meshguard: no service in the mesh is called " + host + "\n");
            Record(context, started, requestId, traceParent, null, null);
            return;
        }
        var endpoint = route.Pick();
        var error = await forwarder.SendAsync(context, endpoint.DestinationPrefix, endpoint.Pool, RequestConfig, OutboundTransformer.Instance);
        if (error == ForwarderError.None || IsLateRequestBodyError(error) && OutboundTransformer.DestinationAnswered(context))
        {
            Record(context, started, requestId, traceParent, route, endpoint);
            return;
        }
        var exception = context.GetForwarderErrorFeature()?.Exception;
        var identityError = FindIdentityError(exception);
        if (identityError is not null)
        {
            LogWrongIdentity(logger, route.Name, endpoint.Address, identityError.Reason);
            await Refusal.WriteAsync(context, StatusCodes.Status502BadGateway, "meshguard: endpoint " + endpoint.Address + " of " + route.Name + " refused: " + identityError.Reason + "\n");
        }
        else
        {
            LogForwardFailed(logger, route.Name, endpoint.Address, error.ToString(), exception?.Message ?? "");
            await Refusal.WriteAsync(context, StatusCodes.Status502BadGateway, "meshguard: upstream " + route.Name + " failed: " + error + "\n");
        }
        Record(context, started, requestId, traceParent, route, endpoint);
    }

    private void Record(HttpContext context, long started, string requestId, string traceParent, ServiceRoute? route, MeshEndpoint? endpoint)
    {
        if (!flows.Enabled)
        {
            return;
        }
        flows.Add(FlowFields.ForExchange(context, FlowDirection.Outbound, started, time.GetUtcNow(), flows.Settings.KeepQuery) with
        {
            RequestId = requestId,
            SourceId = identity.IdText,
            DestId = endpoint?.IdentityText,
            DestService = route?.Name ?? context.Request.Host.Value,
            DestPort = endpoint?.EndPoint.Port ?? 0,
            TraceId = traceParent,
            TlsVersion = endpoint is null ? null : FlowFields.TlsVersion,
        });
    }

    /// <summary>The request body failed, which YARP reports even after the destination's whole answer was relayed.</summary>
    private static bool IsLateRequestBodyError(ForwarderError error) =>
        error is ForwarderError.RequestBodyDestination or ForwarderError.RequestBodyCanceled or ForwarderError.RequestBodyClient;

    private static PeerIdentityException? FindIdentityError(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is PeerIdentityException identity)
            {
                return identity;
            }
        }
        return null;
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message = "outbound: no service for host {Host}")]
    private static partial void LogUnknownService(ILogger logger, string host);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "outbound: refused endpoint {Address} of service {Service}: {Reason}")]
    private static partial void LogWrongIdentity(ILogger logger, string service, string address, string reason);

    [LoggerMessage(EventId = 202, Level = LogLevel.Warning, Message = "outbound: forwarding to {Address} of service {Service} failed: {Error} {Detail}")]
    private static partial void LogForwardFailed(ILogger logger, string service, string address, string error, string detail);
}
