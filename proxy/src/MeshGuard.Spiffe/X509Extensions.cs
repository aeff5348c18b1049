using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;

namespace MeshGuard.Spiffe;

/// <summary>Reads the parts of an X.509 certificate that SPIFFE cares about.</summary>
public static class SvidCertificateExtensions
{
    private const string SubjectAltNameOid = "2.5.29.17";

    /// <summary>Every URI in the subjectAltName extension, in order. Empty when there is none.</summary>
    public static IReadOnlyList<string> GetUriSans(this X509Certificate2 certificate)
    {
        foreach (var extension in certificate.Extensions)
        {
            if (extension.Oid?.Value == SubjectAltNameOid)
            {
                try
                {
                    return ReadUris(extension.RawData);
                }
                catch (AsnContentException)
                {
                    // A malformed SAN carries no usable identity.
                    return [];
                }
            }
        }
        return [];
    }

    /// <summary>The SPIFFE ID of the certificate's single URI SAN, or null when it has not exactly one valid one.</summary>
    public static SpiffeId? GetSpiffeId(this X509Certificate2 certificate)
    {
        var uris = certificate.GetUriSans();
        return uris.Count == 1 && SpiffeId.TryParse(uris[0], out var id, out _) ? id : null;
    }

    public static bool IsCertificateAuthority(this X509Certificate2 certificate)
    {
        foreach (var extension in certificate.Extensions)
        {
            if (extension is X509BasicConstraintsExtension basic)
            {
                return basic.CertificateAuthority;
            }
        }
        return false;
    }

    /// <summary>
    /// Whether the certificate may be used for <paramref name="purposeOid"/>: true when its extendedKeyUsage
    /// lists it, or when it has no extendedKeyUsage at all (RFC 5280 4.2.1.12: no restriction).
    /// </summary>
    public static bool AllowsExtendedKeyUsage(this X509Certificate2 certificate, string purposeOid)
    {
        foreach (var extension in certificate.Extensions)
        {
            if (extension is X509EnhancedKeyUsageExtension usage)
            {
                foreach (var oid in usage.EnhancedKeyUsages)
                {
                    if (oid.Value == purposeOid)
                    {
                        return true;
                    }
                }
                return false;
            }
        }
        return true;
    }

    public static X509KeyUsageFlags? GetKeyUsage(this X509Certificate2 certificate)
    {
        foreach (var extension in certificate.Extensions)
        {
            if (extension is X509KeyUsageExtension usage)
            {
                return usage.KeyUsages;
            }
        }
        return null;
    }

    /// <summary>The URIs in a DER subjectAltName extension value (also used for CSR extensions).</summary>
    public static List<string> ReadUris(byte[] rawData)
    {
        var uris = new List<string>(1);
        var reader = new AsnReader(rawData, AsnEncodingRules.DER);
        var sequence = reader.ReadSequence();
        var uriTag = new Asn1Tag(TagClass.ContextSpecific, 6);
        while (sequence.HasData)
        {
            var tag = sequence.PeekTag();
            if (tag.HasSameClassAndValue(uriTag))
            {
                uris.Add(sequence.ReadCharacterString(UniversalTagNumber.IA5String, uriTag));
            }
            else
            {
                sequence.ReadEncodedValue();
            }
        }
        return uris;
    }
}
