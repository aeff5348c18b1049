using MeshGuard.Spiffe;
using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// Who is on the other end of an inbound connection, learned once at the handshake and kept for every
/// request on that connection, with the x-forwarded-client-cert value already built.
/// </summary>
internal sealed class PeerIdentityFeature(SpiffeId peer, StringValues forwardedClientCert)
{
    public SpiffeId Peer { get; } = peer;

    public StringValues ForwardedClientCert { get; } = forwardedClientCert;
}
