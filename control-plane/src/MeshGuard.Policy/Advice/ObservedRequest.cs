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
    string? AuditRule = null);
