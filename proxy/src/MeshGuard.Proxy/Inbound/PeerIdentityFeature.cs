using MeshGuard.Policy.Engine;
using MeshGuard.Spiffe;
using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// Who is on the other end of an inbound connection, learned once at the handshake and kept for every
/// request on that connection, with the x-forwarded-client-cert value already built.
/// </summary>
internal sealed class PeerIdentityFeature(SpiffeId peer, StringValues forwardedClientCert, string? remoteAddress = null)
{
    public SpiffeId Peer { get; } = peer;

    /// <summary>The peer as policies match it, built once for the connection.</summary>
    public Caller Caller { get; } = Caller.From(peer);

    /// <summary>ip:port of the peer, formatted once for the flow records of this connection.</summary>
    public string? RemoteAddress { get; } = remoteAddress;

    public StringValues ForwardedClientCert { get; } = forwardedClientCert;
}
