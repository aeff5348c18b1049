using System.Security.Cryptography.X509Certificates;

namespace MeshGuard.Spiffe;

/// <summary>
/// Verifies an X.509-SVID against a trust bundle, with the rules of the X.509-SVID spec (as go-spiffe's
/// <c>x509svid.Verify</c>): the leaf is not a CA, has no keyCertSign or cRLSign, carries exactly one
/// spiffe URI SAN whose trust domain is the bundle's, may serve the <see cref="SvidPurpose"/> the peer
/// plays (a client SVID must allow clientAuth, a server's serverAuth), and chains to one of the bundle's
/// roots at <paramref name="now"/>.
/// </summary>
public static class X509SvidVerifier
{
    private const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    public static SvidVerification Verify(
        X509Certificate2 leaf,
        X509Certificate2Collection? intermediates,
        TrustBundle bundle,
        DateTimeOffset now,
        SvidPurpose purpose = SvidPurpose.Any)
    {
        ArgumentNullException.ThrowIfNull(leaf);
        ArgumentNullException.ThrowIfNull(bundle);
        try
        {
            return VerifyDecoded(leaf, intermediates, bundle, now, purpose);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            // Extensions are decoded on first use; a peer's malformed one (found by fuzzing) is a refusal, not a crash.
            return SvidVerification.Fail("certificate has a malformed extension");
        }
    }

    private static SvidVerification VerifyDecoded(
        X509Certificate2 leaf, X509Certificate2Collection? intermediates, TrustBundle bundle, DateTimeOffset now, SvidPurpose purpose)
    {
        if (leaf.IsCertificateAuthority())
        {
            return SvidVerification.Fail("leaf certificate is a CA");
        }
        var usage = leaf.GetKeyUsage();
        if (usage is { } flags && (flags & (X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign)) != 0)
        {
            return SvidVerification.Fail("leaf certificate has keyCertSign or cRLSign");
        }
        if (purpose == SvidPurpose.Client && !leaf.AllowsExtendedKeyUsage(ClientAuthOid))
        {
            return SvidVerification.Fail("leaf certificate is not for client authentication (extendedKeyUsage)");
        }
        if (purpose == SvidPurpose.Server && !leaf.AllowsExtendedKeyUsage(ServerAuthOid))
        {
            return SvidVerification.Fail("leaf certificate is not for server authentication (extendedKeyUsage)");
        }
        var uris = leaf.GetUriSans();
        if (uris.Count != 1)
        {
            return SvidVerification.Fail(uris.Count == 0 ? "leaf certificate has no URI SAN" : "leaf certificate has more than one URI SAN");
        }
        if (!SpiffeId.TryParse(uris[0], out var id, out var idError))
        {
            return SvidVerification.Fail($"leaf URI SAN is not a SPIFFE ID: {idError}");
        }
        if (id.Path.Length == 0)
        {
            return SvidVerification.Fail("leaf SPIFFE ID has no path");
        }
        if (id.TrustDomain != bundle.TrustDomain)
        {
            return SvidVerification.Fail($"trust domain '{id.TrustDomain}' is not in the bundle");
        }

        using var chain = new X509Chain();
        var policy = chain.ChainPolicy;
        policy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        policy.CustomTrustStore.AddRange(bundle.Roots);
        policy.RevocationMode = X509RevocationMode.NoCheck;
        // Trust comes from the bundle alone: never fetch an issuer a certificate points at.
        policy.DisableCertificateDownloads = true;
        policy.VerificationTime = now.UtcDateTime;
        policy.VerificationTimeIgnored = false;
        if (intermediates is not null)
        {
            policy.ExtraStore.AddRange(intermediates);
        }
        if (!chain.Build(leaf))
        {
            var reason = "certificate chain does not verify";
            foreach (var status in chain.ChainStatus)
            {
                if (status.Status != X509ChainStatusFlags.NoError)
                {
                    reason = DescribeChainStatus(status.Status);
                    break;
                }
            }
            return SvidVerification.Fail(reason);
        }
        return SvidVerification.Success(id);
    }

    private static string DescribeChainStatus(X509ChainStatusFlags status) => status switch
    {
        X509ChainStatusFlags.NotTimeValid => "certificate expired or not yet valid",
        X509ChainStatusFlags.UntrustedRoot or X509ChainStatusFlags.PartialChain => "certificate does not chain to the trust bundle",
        X509ChainStatusFlags.NotSignatureValid => "certificate signature is not valid",
        _ => $"certificate chain does not verify ({status})",
    };
}

/// <summary>The role the SVID's holder plays in the TLS handshake being verified.</summary>
public enum SvidPurpose
{
    /// <summary>No TLS role (a signer of snapshots or checkpoints, a stored SVID).</summary>
    Any,

    /// <summary>The peer is the TLS client: its SVID must allow clientAuth.</summary>
    Client,

    /// <summary>The peer is the TLS server: its SVID must allow serverAuth.</summary>
    Server,
}

/// <summary>The outcome of verifying an SVID: the peer's SPIFFE ID, or why it was refused.</summary>
public readonly record struct SvidVerification(SpiffeId? Id, string? Error)
{
    public bool IsValid => Id is not null;

    public static SvidVerification Success(SpiffeId id) => new(id, null);

    public static SvidVerification Fail(string error) => new(null, error);
}
