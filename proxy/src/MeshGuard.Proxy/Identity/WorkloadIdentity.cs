using System.Net.Security;
using MeshGuard.Proxy.Transport;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Identity;

/// <summary>
/// The sidecar's current SVID, trust bundle and inbound TLS options, published together as one immutable
/// snapshot. The rotator writes SVIDs, the snapshot applier a new bundle; handshakes read <see cref="Current"/>
/// once and use what they got.
/// </summary>
internal sealed class WorkloadIdentity(TimeProvider time)
{
    // HTTP/2 and HTTP/1.1 for requests, meshguard/tcp for opaque TCP connections.
    private static readonly List<SslApplicationProtocol> InboundProtocols =
        [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11, MeshGuard.Proxy.Transport.OpaqueTcp.Protocol];

    private IdentitySnapshot? _current;

    public sealed record IdentitySnapshot(X509Svid Svid, TrustBundle Bundle, SslServerAuthenticationOptions InboundTls, DateTimeOffset ReceivedAt);

    public IdentitySnapshot Current => Volatile.Read(ref _current) ?? throw new InvalidOperationException("the sidecar has no SVID yet");

    public X509Svid? CurrentSvid => Volatile.Read(ref _current)?.Svid;

    public TrustBundle Bundle => Current.Bundle;

    public SpiffeId Id => Current.Svid.Id;

    /// <summary>The workload's SPIFFE ID as text (the same string every time).</summary>
    public string IdText => Current.Svid.Id.ToString();

    public bool HasValidSvid => Volatile.Read(ref _current) is { } s && s.Svid.NotAfter > time.GetUtcNow();

    /// <summary>Builds the TLS options for a new SVID first, then publishes both at once.</summary>
    public void Publish(X509Svid svid, TrustBundle bundle)
    {
        var inbound = SvidTls.CreateServerOptions(svid, bundle, time, InboundProtocols);
        Volatile.Write(ref _current, new IdentitySnapshot(svid, bundle, inbound, time.GetUtcNow()));
    }

    /// <summary>A new trust bundle for the SVID in hand (a root rotation): the SVID and its renewal schedule stay.</summary>
    public void PublishBundle(TrustBundle bundle)
    {
        var current = Current;
        var inbound = SvidTls.CreateServerOptions(current.Svid, bundle, time, InboundProtocols);
        Volatile.Write(ref _current, current with { Bundle = bundle, InboundTls = inbound });
    }
}
