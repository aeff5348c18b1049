using System.Net.Security;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Identity;

/// <summary>
/// Where everything that needs the sidecar's credentials reads them: one property, the credentials in force.
/// Only <see cref="WorkloadIdentity"/> writes them. A reader takes <see cref="Current"/> once per use (a
/// handshake, a record, a signature) and uses what it got.
/// </summary>
internal interface ICredentialSource
{
    WorkloadCredentials Current { get; }
}

/// <summary>The SVID, the trust bundle and the inbound TLS options built for that pair, published together.</summary>
internal sealed record WorkloadCredentials(X509Svid Svid, TrustBundle Bundle, SslServerAuthenticationOptions InboundTls, DateTimeOffset ReceivedAt)
{
    public SpiffeId Id => Svid.Id;

    /// <summary>The workload's SPIFFE ID as text (the same string every time).</summary>
    public string IdText { get; } = Svid.Id.ToString();
}
