using MeshGuard.Spiffe;
using Microsoft.AspNetCore.Http;

namespace MeshGuard.ControlPlane.Attestation;

/// <summary>The SPIFFE ID of the mTLS peer of a request; Kestrel verified the certificate at the handshake.</summary>
internal static class PeerIdentity
{
    public static SpiffeId? Get(HttpContext context) => context.Connection.ClientCertificate?.GetSpiffeId();
}
