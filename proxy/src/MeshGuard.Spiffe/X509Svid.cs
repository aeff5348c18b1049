using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MeshGuard.Spiffe;

/// <summary>
/// A workload's X.509-SVID: the leaf with its private key, the intermediates to present with it, and the TLS
/// certificate context built once, so every handshake reuses it.
/// </summary>
public sealed class X509Svid
{
    private X509Svid(SpiffeId id, X509Certificate2 certificate, X509Certificate2Collection intermediates)
    {
        Id = id;
        Certificate = certificate;
        Intermediates = intermediates;
        TlsContext = SslStreamCertificateContext.Create(certificate, intermediates, offline: true);
    }

    public SpiffeId Id { get; }

    /// <summary>The leaf, with its private key.</summary>
    public X509Certificate2 Certificate { get; }

    public X509Certificate2Collection Intermediates { get; }

    public SslStreamCertificateContext TlsContext { get; }

    public DateTimeOffset NotBefore => Certificate.NotBefore.ToUniversalTime();

    public DateTimeOffset NotAfter => Certificate.NotAfter.ToUniversalTime();

    /// <summary>
    /// Builds an SVID from a PEM chain (leaf first) and the key that made its CSR. Refuses a chain whose leaf
    /// does not match the key, or that does not verify against <paramref name="bundle"/> now.
    /// </summary>
    public static X509Svid Create(string chainPem, ECDsa key, TrustBundle bundle, DateTimeOffset now)
    {
        var chain = new X509Certificate2Collection();
        chain.ImportFromPem(chainPem);
        if (chain.Count == 0)
        {
            throw new FormatException("SVID chain holds no certificate");
        }
        var intermediates = new X509Certificate2Collection();
        for (var i = 1; i < chain.Count; i++)
        {
            intermediates.Add(chain[i]);
        }
        var verification = X509SvidVerifier.Verify(chain[0], intermediates, bundle, now);
        if (!verification.IsValid)
        {
            throw new FormatException($"SVID does not verify: {verification.Error}");
        }
        X509Certificate2 leaf;
        try
        {
            leaf = chain[0].CopyWithPrivateKey(key);
        }
        catch (ArgumentException e)
        {
            throw new FormatException("SVID does not match the workload key", e);
        }
        return new X509Svid(verification.Id!, leaf, intermediates);
    }

    /// <summary>The PEM chain as it was issued: leaf, then intermediates.</summary>
    public string ChainPem()
    {
        var pem = Certificate.ExportCertificatePem() + "\n";
        foreach (var intermediate in Intermediates)
        {
            pem += intermediate.ExportCertificatePem() + "\n";
        }
        return pem;
    }
}
