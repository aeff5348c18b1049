using Grpc.Core;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Hosting;

/// <summary>The SPIFFE ID of the mTLS peer of a call; Kestrel verified the certificate at the handshake.</summary>
internal static class PeerIdentity
{
    /// <summary>The caller of a gRPC call on the mTLS port; a call without a client SVID is refused.</summary>
    public static SpiffeId Require(ServerCallContext context) =>
        Of(context.GetHttpContext()) ?? throw new RpcException(new Status(StatusCode.Unauthenticated, "a client SVID is required"));

    /// <summary>The SPIFFE ID of the request's mTLS peer, or null when it presented no SVID.</summary>
    public static SpiffeId? Of(HttpContext context) => context.Connection.ClientCertificate?.GetSpiffeId();
}
