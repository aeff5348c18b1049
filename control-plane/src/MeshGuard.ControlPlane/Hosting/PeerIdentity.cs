using Grpc.Core;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Hosting;

/// <summary>The SPIFFE ID of the mTLS peer of a call; Kestrel verified the certificate at the handshake.</summary>
internal static class PeerIdentity
{
    /// <summary>The caller of a gRPC call on the mTLS port; a call without a client SVID is refused.</summary>
    public static SpiffeId Require(ServerCallContext context) =>
        context.GetHttpContext().Connection.ClientCertificate?.GetSpiffeId()
        ?? throw new RpcException(new Status(StatusCode.Unauthenticated, "a client SVID is required"));
}
