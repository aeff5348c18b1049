using System.Net.Security;
using System.Security.Cryptography;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Identity;

/// <summary>
/// The one writer of the sidecar's credentials: a new SVID (attested, renewed or resumed from disk) or a new trust
/// bundle (a root rotation) is published here as one immutable <see cref="WorkloadCredentials"/>, its TLS options
/// built first, and kept in the state directory (key 0600) so that a restart goes on with what was in force.
/// Everything else reads them through <see cref="ICredentialSource"/>.
/// </summary>
internal sealed class WorkloadIdentity(TimeProvider time, SvidStore? store = null) : ICredentialSource
{
    // HTTP/2 and HTTP/1.1 for requests, meshguard/tcp for opaque TCP connections.
    private static readonly List<SslApplicationProtocol> InboundProtocols =
        [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11, MeshGuard.Proxy.Transport.OpaqueTcp.Protocol];

    private WorkloadCredentials? _current;

    public WorkloadCredentials Current => Volatile.Read(ref _current) ?? throw new InvalidOperationException("the sidecar has no SVID yet");

    /// <summary>Publishes a new SVID with its bundle; with its <paramref name="key"/>, keeps both on disk too (a resumed SVID is there already).</summary>
    public void Publish(X509Svid svid, TrustBundle bundle, ECDsa? key)
    {
        var inbound = SvidTls.CreateServerOptions(svid, bundle, time, InboundProtocols);
        Volatile.Write(ref _current, new WorkloadCredentials(svid, bundle, inbound, time.GetUtcNow()));
        if (key is not null)
        {
            store?.Save(svid, bundle, key);
        }
    }

    /// <summary>A new trust bundle for the SVID in hand (a root rotation): the SVID and its renewal schedule stay.</summary>
    public void PublishBundle(TrustBundle bundle)
    {
        var current = Current;
        var inbound = SvidTls.CreateServerOptions(current.Svid, bundle, time, InboundProtocols);
        Volatile.Write(ref _current, current with { Bundle = bundle, InboundTls = inbound });
        store?.SaveBundle(bundle);
    }
}
