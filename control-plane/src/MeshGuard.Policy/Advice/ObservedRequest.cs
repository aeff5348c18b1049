using System.Text.Json;
using MeshGuard.Policy.Engine;

namespace MeshGuard.Policy.Advice;

/// <summary>
/// One inbound request as a flow log recorded it: who called which workload how, and what was decided.
/// Headers are not recorded, so replays evaluate <c>when</c> conditions as unmet.
/// </summary>
public sealed record ObservedRequest(
    string SourceId,
    string DestId,
    int Port,
    string Method,
    string Path,
    Verdict Decision,
    AuditVerdict Audit,
    string? Policy,
    string? Rule,
    string? AuditPolicy = null,
    string? AuditRule = null)
{
    /// <summary>
    /// The request an inbound flow record describes (one JSON object of the flow-log format), or null for any
    /// other record: outbound, signed, gap, or one without both identities.
    /// </summary>
    public static ObservedRequest? FromFlowRecord(JsonElement r)
    {
        if (Text(r, "kind") != "flow" || Text(r, "direction") != "inbound" || Text(r, "source_id") is not { } source || Text(r, "dest_id") is not { } dest)
        {
            return null;
        }
        var port = r.TryGetProperty("dest_port", out var p) && p.ValueKind == JsonValueKind.Number && p.TryGetInt32(out var n) ? n : 0;
        return new ObservedRequest(
            source, dest, port, Text(r, "method") ?? "", Text(r, "path") ?? "",
            Text(r, "decision") == "allow" ? Verdict.Allow : Verdict.Deny,
            Text(r, "audit_decision") switch { "allow" => AuditVerdict.Allow, "deny" => AuditVerdict.Deny, _ => AuditVerdict.None },
            Text(r, "policy"), Text(r, "rule"), Text(r, "audit_policy"), Text(r, "audit_rule"));
    }

    private static string? Text(JsonElement r, string name)
    {
        if (!r.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String)
        {
            return null;
        }
        try
        {
            return value.GetString();
        }
        catch (InvalidOperationException)
        {
            return null; // a lone escaped surrogate: no text
        }
    }
}
