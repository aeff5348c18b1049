using System.Text.Json.Serialization;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Outbound;

namespace MeshGuard.Proxy.Admin;

/// <summary>The admin listener (127.0.0.1 only): readiness, the current SVID, what the sidecar runs with.</summary>
internal static class AdminEndpoints
{
    public static void Map(IEndpointRouteBuilder app, string host)
    {
        app.MapGet("/healthz", () => Results.Text("ok\n")).RequireHost(host);
        app.MapGet("/ready", (WorkloadIdentity identity, ServiceDirectory directory) =>
        {
            if (!identity.HasValidSvid)
            {
                return Results.Text("not ready: no valid SVID\n", statusCode: StatusCodes.Status503ServiceUnavailable);
            }
            return directory.HasTable
                ? Results.Text("ready\n")
                : Results.Text("not ready: no service table from the control plane yet\n", statusCode: StatusCodes.Status503ServiceUnavailable);
        }).RequireHost(host);
        app.MapGet("/certs", (WorkloadIdentity identity) =>
        {
            var svid = identity.Current.Svid;
            var chain = new List<string> { svid.Certificate.ExportCertificatePem() };
            foreach (var intermediate in svid.Intermediates)
            {
                chain.Add(intermediate.ExportCertificatePem());
            }
            var info = new CertsInfo(
                svid.Id.ToString(), svid.Certificate.SerialNumber, svid.Certificate.Issuer, svid.NotBefore, svid.NotAfter, chain, identity.Bundle.ToPem());
            return Results.Json(info, AdminJsonContext.Default.CertsInfo);
        }).RequireHost(host);
        app.MapGet("/config", (WorkloadIdentity identity, ServiceDirectory directory, ProxySettings settings) =>
            Results.Json(
                new ConfigInfo(identity.Id.ToString(), settings.Service, directory.Version, directory.ServiceCount),
                AdminJsonContext.Default.ConfigInfo)).RequireHost(host);
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
    [property: JsonPropertyName("service_table_version")] long ServiceTableVersion,
    [property: JsonPropertyName("services")] int Services);

[JsonSerializable(typeof(CertsInfo))]
[JsonSerializable(typeof(ConfigInfo))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
