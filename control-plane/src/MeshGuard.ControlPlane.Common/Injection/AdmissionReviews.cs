using System.Text;
using System.Text.Json.Nodes;

namespace MeshGuard.ControlPlane.Common.Injection;

/// <summary>
/// The admission.k8s.io/v1 AdmissionReview exchange of the injection webhook. It always allows the pod: a
/// pod that cannot or should not get a sidecar is admitted as it is, so the webhook never blocks a workload;
/// the webhook configuration's namespace selector decides which pods are asked about at all.
/// </summary>
public static class AdmissionReviews
{
    /// <summary>The response to <paramref name="review"/>; a <see cref="FormatException"/> when it is no AdmissionReview.</summary>
    public static JsonObject Respond(JsonNode? review, InjectionTemplate template, out InjectionDecision decision)
    {
        if (review?["apiVersion"]?.GetValue<string>() != "admission.k8s.io/v1" || review["kind"]?.GetValue<string>() != "AdmissionReview")
        {
            throw new FormatException("not an admission.k8s.io/v1 AdmissionReview");
        }
        var request = review["request"] as JsonObject ?? throw new FormatException("the AdmissionReview has no request");
        var uid = request["uid"]?.GetValue<string>() ?? throw new FormatException("the AdmissionReview request has no uid");
        var response = new JsonObject { ["uid"] = uid, ["allowed"] = true };
        var kind = request["kind"]?["kind"]?.GetValue<string>();
        var operation = request["operation"]?.GetValue<string>();
        if (kind != "Pod" || operation != "CREATE" || request["object"] is not JsonObject pod)
        {
            decision = InjectionDecision.Skip($"not a Pod CREATE ({kind} {operation})");
        }
        else
        {
            decision = SidecarInjector.Decide(pod, template);
            if (decision.Inject)
            {
                response["patchType"] = "JSONPatch";
                response["patch"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(decision.Patch.ToJsonString()));
            }
        }
        return new JsonObject
        {
            ["apiVersion"] = "admission.k8s.io/v1",
            ["kind"] = "AdmissionReview",
            ["response"] = response,
        };
    }
}
