using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Ca;

/// <summary>A parsed PKCS#10 CSR whose self-signature verified: its public key and the URI SANs it asks for.</summary>
internal sealed class SvidSigningRequest
{
    public const int MaxPemLength = 16 * 1024;

    private SvidSigningRequest(PublicKey publicKey, IReadOnlyList<string> requestedUris)
    {
        PublicKey = publicKey;
        RequestedUris = requestedUris;
    }

    public PublicKey PublicKey { get; }

    public IReadOnlyList<string> RequestedUris { get; }

    /// <summary>Parses and checks a CSR; the error says what is wrong with it.</summary>
    public static bool TryParse(string? pem, out SvidSigningRequest? csr, out string? error)
    {
        csr = null;
        if (string.IsNullOrWhiteSpace(pem))
        {
            error = "CSR is missing";
            return false;
        }
        if (pem.Length > MaxPemLength)
        {
            error = $"CSR is larger than {MaxPemLength} bytes";
            return false;
        }
        CertificateRequest request;
        try
        {
            // Extensions are loaded only to compare the requested SAN with the attested identity; they are never copied.
            request = CertificateRequest.LoadSigningRequestPem(
                pem, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.UnsafeLoadCertificateExtensions);
        }
        catch (CryptographicException e)
        {
            error = $"CSR is malformed or its signature does not verify: {e.Message}";
            return false;
        }
        catch (ArgumentException e)
        {
            error = $"CSR is malformed: {e.Message}";
            return false;
        }
        var key = request.PublicKey;
        if (key.Oid.Value != "1.2.840.10045.2.1")
        {
            error = "CSR key must be ECDSA P-256";
            return false;
        }
        using (var ecdsa = key.GetECDsaPublicKey())
        {
            if (ecdsa is null || ecdsa.KeySize != 256)
            {
                error = "CSR key must be ECDSA P-256";
                return false;
            }
        }
        var uris = new List<string>();
        foreach (var extension in request.CertificateExtensions)
        {
            if (extension.Oid?.Value == "2.5.29.17")
            {
                try
                {
                    uris.AddRange(SvidCertificateExtensions.ReadUris(extension.RawData));
                }
                catch (System.Formats.Asn1.AsnContentException)
                {
                    error = "CSR subjectAltName is malformed";
                    return false;
                }
            }
        }
        csr = new SvidSigningRequest(key, uris);
        error = null;
        return true;
    }

    /// <summary>Null when the CSR asks for <paramref name="id"/> or for nothing; else why it cannot have it.</summary>
    public string? CheckRequestedIdentity(SpiffeId id)
    {
        foreach (var uri in RequestedUris)
        {
            if (uri != id.ToString())
            {
                return $"CSR asks for {uri} but the caller is {id}";
            }
        }
        return null;
    }
}
