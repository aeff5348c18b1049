using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MeshGuard.Spiffe;

/// <summary>Makes the workload key and its PKCS#10 request. The private key never leaves the process.</summary>
public static class SvidKey
{
    public static ECDsa CreateKey() => ECDsa.Create(ECCurve.NamedCurves.nistP256);

    /// <summary>A PEM CSR for <paramref name="id"/>. The CA sets the SAN from the attested identity, not from here.</summary>
    public static string CreateSigningRequestPem(ECDsa key, SpiffeId id)
    {
        var request = new CertificateRequest("CN=" + id.CommonName, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(SubjectAltNames.Build(id.ToString()));
        return request.CreateSigningRequestPem();
    }
}
