using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace MeshGuard.Spiffe;

/// <summary>
/// TLS options for SPIFFE peers: TLS 1.3 only, the peer's certificate verified as an X.509-SVID against the
/// trust bundle (the platform's own validation of names and stores is ignored: SPIFFE identities are URIs).
/// Server options are built once per SVID rotation and shared; client options are per connection because
/// they name the server they expect.
/// </summary>
public static class SvidTls
{
    public static readonly List<SslApplicationProtocol> Http2AndHttp11 = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11];

    /// <summary>
    /// The chain policy the TLS layer builds the peer's chain with before our own verification runs: offline. A
    /// certificate's authority-information-access URL is never followed and nothing is asked about revocation, so
    /// a peer that has proven nothing yet cannot make this process send a request anywhere or hold its handshake
    /// on a slow server. A fresh instance each time: the TLS layer adds the peer's intermediates to it.
    /// </summary>
    public static X509ChainPolicy OfflineChainPolicy() => new()
    {
        DisableCertificateDownloads = true,
        RevocationMode = X509RevocationMode.NoCheck,
    };

    /// <summary>Options for a listener that requires a client SVID from the bundle's trust domain.</summary>
    public static SslServerAuthenticationOptions CreateServerOptions(
        X509Svid svid, TrustBundle bundle, TimeProvider time, List<SslApplicationProtocol> protocols, bool requireClientCertificate = true)
    {
        var options = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = svid.TlsContext,
            EnabledSslProtocols = SslProtocols.Tls13,
            ClientCertificateRequired = requireClientCertificate,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            CertificateChainPolicy = OfflineChainPolicy(),
            ApplicationProtocols = protocols,
            AllowRenegotiation = false,
            // Every connection proves its identity afresh: a resumed session skips the certificate callback and,
            // on this platform, leaves the peer certificate unknown, so the connection would carry no identity.
            AllowTlsResume = false,
        };
        if (requireClientCertificate)
        {
            options.RemoteCertificateValidationCallback = (_, certificate, chain, _) =>
                certificate is X509Certificate2 peer &&
                X509SvidVerifier.Verify(peer, chain?.ChainPolicy.ExtraStore, bundle, time.GetUtcNow(), SvidPurpose.Client).IsValid;
        }
        return options;
    }

    /// <summary>
    /// Options for a connection to a server that must present <paramref name="expectedServer"/>. The reason a
    /// server was refused is left in <paramref name="outcome"/>, which the caller reads when the handshake fails.
    /// </summary>
    public static SslClientAuthenticationOptions CreateClientOptions(
        X509Svid? svid, TrustBundle bundle, SpiffeId expectedServer, TimeProvider time, List<SslApplicationProtocol> protocols, ServerVerificationOutcome outcome)
    {
        return new SslClientAuthenticationOptions
        {
            // SNI carries no meaning between SPIFFE peers; the trust domain keeps it stable and non-empty.
            TargetHost = bundle.TrustDomain,
            ClientCertificateContext = svid?.TlsContext,
            EnabledSslProtocols = SslProtocols.Tls13,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            CertificateChainPolicy = OfflineChainPolicy(),
            ApplicationProtocols = protocols,
            AllowRenegotiation = false,
            // No resumption: it would skip the check that this server is the identity the caller expects.
            AllowTlsResume = false,
            RemoteCertificateValidationCallback = (_, certificate, chain, _) =>
            {
                if (certificate is not X509Certificate2 peer)
                {
                    outcome.Error = "server presented no certificate";
                    return false;
                }
                var verification = X509SvidVerifier.Verify(peer, chain?.ChainPolicy.ExtraStore, bundle, time.GetUtcNow(), SvidPurpose.Server);
                if (!verification.IsValid)
                {
                    outcome.Error = $"server certificate refused: {verification.Error}";
                    return false;
                }
                outcome.PeerId = verification.Id;
                if (verification.Id != expectedServer)
                {
                    outcome.Error = $"server presented {verification.Id} but {expectedServer} was expected";
                    return false;
                }
                return true;
            },
        };
    }
}

/// <summary>What a client learned about the server during one handshake.</summary>
public sealed class ServerVerificationOutcome
{
    public SpiffeId? PeerId { get; set; }

    public string? Error { get; set; }
}
