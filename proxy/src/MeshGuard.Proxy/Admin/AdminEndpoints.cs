using System.Text.Json.Serialization;
using MeshGuard.Hosting;
using MeshGuard.Proxy.Authorization;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.ControlPlaneClient;
using MeshGuard.Proxy.Identity;

namespace MeshGuard.Proxy.Admin;

/// <summary>The admin listener (127.0.0.1 only): readiness, the current SVID, what the sidecar runs with.</summary>
internal static class AdminEndpoints
{
    public static void Map(IEndpointRouteBuilder app, int port)
    {
        app.MapGet("/healthz", () => Results.Text("ok\n")).OnListener(port, loopbackHost: true);
        app.MapGet("/ready", (ICredentialSource credentials, SidecarConfigSource config, TimeProvider time) =>
        {
            if (credentials.Current.Svid.NotAfter <= time.GetUtcNow())
            {
                return Results.Text("not ready: no valid SVID\n", statusCode: StatusCodes.Status503ServiceUnavailable);
            }
            return config.Current is not null
                ? Results.Text("ready\n")
                : Results.Text("not ready: no config snapshot yet\n", statusCode: StatusCodes.Status503ServiceUnavailable);
        }).OnListener(port, loopbackHost: true);
        app.MapGet("/certs", (ICredentialSource credentials) =>
        {
            var current = credentials.Current;
            var svid = current.Svid;
            var chain = new List<string> { svid.Certificate.ExportCertificatePem() };
            foreach (var intermediate in svid.Intermediates)
            {
                chain.Add(intermediate.ExportCertificatePem());
            }
            var info = new CertsInfo(
                svid.Id.ToString(), svid.Certificate.SerialNumber, svid.Certificate.Issuer, svid.NotBefore, svid.NotAfter, chain, current.Bundle.ToPem());
            return Results.Json(info, AdminJsonContext.Default.CertsInfo);
        }).OnListener(port, loopbackHost: true);
        app.MapGet("/decisions", (DecisionLog decisions, int? limit) =>
        {
            var recent = decisions.Recent(Math.Clamp(limit ?? 50, 1, DecisionLog.Capacity));
            var entries = recent.ConvertAll(static r => new DecisionInfo(
                r.Time, r.Caller, r.Method, r.Path,
                r.Decision.VerdictText,
                r.Decision.Policy, r.Decision.Rule,
                r.Decision.AuditText,
                r.Decision.AuditPolicy, r.Decision.AuditRule));
            return Results.Json(entries, AdminJsonContext.Default.ListDecisionInfo);
        }).OnListener(port, loopbackHost: true);
        app.MapGet("/config", (ICredentialSource credentials, SidecarConfigSource config, SnapshotApplier applier, MeshGuard.Proxy.Inbound.InboundSettings settings, TimeProvider time) =>
        {
            var applied = config.Current;
            var routes = config.Routes;
            var now = time.GetUtcNow();
            return Results.Json(
                new ConfigInfo(
                    credentials.Current.IdText,
                    settings.Service,
                    applied?.Version ?? 0,
                    applied?.Source.ToString().ToLowerInvariant(),
                    applied?.IssuedAt,
                    applied?.AppliedAt,
                    applied is null ? null : (now - applied.IssuedAt).TotalSeconds,
                    applier.Connected,
                    // Stale: the control plane cannot currently tell us about changes.
                    !applier.Connected,
                    applier.LastContact,
                    applier.Refused,
                    routes.Services,
                    routes.Endpoints.Count,
                    routes.EjectedEndpoints,
                    applied?.Authorizer.Policies ?? []),
                AdminJsonContext.Default.ConfigInfo);
        }).OnListener(port, loopbackHost: true);
    }
}

internal sealed record CertsInfo(
    [property: JsonPropertyName("spiffe_id")] string SpiffeId,
    [property: JsonPropertyName("serial")] string Serial,
    [property: JsonPropertyName("issuer")] string Issuer,
    [property: JsonPropertyName("not_before")] DateTimeOffset NotBefore,
    [property: JsonPropertyName("not_after")] DateTimeOffset NotAfter,
    [property: JsonPropertyName("chain_pem")] List<string> ChainPem,
    [property: JsonPropertyName("trust_bundle_pem")] string TrustBundlePem);

internal sealed record ConfigInfo(
    [property: JsonPropertyName("spiffe_id")] string SpiffeId,
    [property: JsonPropertyName("service")] string Service,
    [property: JsonPropertyName("version")] long Version,
    [property: JsonPropertyName("source")] string? Source,
    [property: JsonPropertyName("issued_at")] DateTimeOffset? IssuedAt,
    [property: JsonPropertyName("applied_at")] DateTimeOffset? AppliedAt,
    [property: JsonPropertyName("age_seconds")] double? AgeSeconds,
    [property: JsonPropertyName("connected")] bool Connected,
    [property: JsonPropertyName("stale")] bool Stale,
    [property: JsonPropertyName("last_contact")] DateTimeOffset? LastContact,
    [property: JsonPropertyName("snapshots_refused")] long SnapshotsRefused,
    [property: JsonPropertyName("services")] int Services,
    [property: JsonPropertyName("endpoints")] int Endpoints,
    [property: JsonPropertyName("endpoints_ejected")] int EndpointsEjected,
    [property: JsonPropertyName("policies")] IReadOnlyList<string> Policies);

/// <summary>One inbound decision as /decisions shows it (newest first).</summary>
internal sealed record DecisionInfo(
    [property: JsonPropertyName("time")] DateTimeOffset Time,
    [property: JsonPropertyName("source_id")] string SourceId,
    [property: JsonPropertyName("method")] string Method,
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("decision")] string Decision,
    [property: JsonPropertyName("policy")] string? Policy,
    [property: JsonPropertyName("rule")] string? Rule,
    [property: JsonPropertyName("audit_decision")] string? AuditDecision,
    [property: JsonPropertyName("audit_policy")] string? AuditPolicy,
    [property: JsonPropertyName("audit_rule")] string? AuditRule);

[JsonSerializable(typeof(List<DecisionInfo>))]
[JsonSerializable(typeof(CertsInfo))]
[JsonSerializable(typeof(ConfigInfo))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
