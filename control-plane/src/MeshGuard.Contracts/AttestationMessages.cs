using System.Text.Json.Serialization;

namespace MeshGuard.Contracts;

/// <summary>Paths of the bootstrap endpoints on the control plane's TLS port (15012).</summary>
public static class Bootstrap
{
    public const string AttestPath = "/v1/attest";

    /// <summary>Where the rest of the control plane is (<see cref="BootstrapInfo"/>): a sidecar needs only the bootstrap address.</summary>
    public const string InfoPath = "/v1/bootstrap";
    public const int MaxRequestBytes = 64 * 1024;
}

/// <summary>
/// What a sidecar sends to join: proof (a one-time join token, or in a cluster its projected service-account
/// token), its CSR, and where its inbound listener is.
/// </summary>
public sealed record AttestRequest(
    [property: JsonPropertyName("join_token")] string? JoinToken,
    [property: JsonPropertyName("csr_pem")] string? CsrPem,
    [property: JsonPropertyName("service")] string? Service,
    [property: JsonPropertyName("inbound_address")] string? InboundAddress,
    [property: JsonPropertyName("service_account_token")] string? ServiceAccountToken = null);

/// <summary>The SVID chain (leaf first) and the trust bundle the sidecar must use from now on.</summary>
public sealed record AttestResponse(
    [property: JsonPropertyName("spiffe_id")] string SpiffeId,
    [property: JsonPropertyName("svid_chain_pem")] string SvidChainPem,
    [property: JsonPropertyName("trust_bundle_pem")] string TrustBundlePem);

/// <summary>
/// The answer at <see cref="Bootstrap.InfoPath"/>: the port of this replica's gRPC (mTLS) listener, on the same host
/// as the bootstrap port, so that one <c>--cp</c> address per replica is all a sidecar is given (as istiod's 15012).
/// </summary>
public sealed record BootstrapInfo([property: JsonPropertyName("grpc_port")] int GrpcPort);

/// <summary>A refusal, with a reason a person can act on.</summary>
public sealed record ErrorResponse([property: JsonPropertyName("error")] string Error);

[JsonSerializable(typeof(AttestRequest))]
[JsonSerializable(typeof(AttestResponse))]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(BootstrapInfo))]
public sealed partial class ContractsJsonContext : JsonSerializerContext;
