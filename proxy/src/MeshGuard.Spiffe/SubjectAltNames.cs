using System.Formats.Asn1;
using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace MeshGuard.Spiffe;

/// <summary>
/// Encodes subjectAltName extensions byte-exact. <see cref="SubjectAlternativeNameBuilder"/> goes through
/// <see cref="Uri"/>, which turns <c>spiffe://td</c> into <c>spiffe://td/</c>: not a valid SPIFFE ID.
/// </summary>
public static class SubjectAltNames
{
    private static readonly Asn1Tag DnsTag = new(TagClass.ContextSpecific, 2);
    private static readonly Asn1Tag UriTag = new(TagClass.ContextSpecific, 6);
    private static readonly Asn1Tag IpTag = new(TagClass.ContextSpecific, 7);

    /// <summary>
    /// A SAN extension with one URI, then DNS names and IP addresses. Critical when there is no subject, as
    /// RFC 5280 wants; MeshGuard certificates always carry a CN, so it is not.
    /// </summary>
    public static X509Extension Build(string uri, IEnumerable<string>? dnsNamesOrAddresses = null)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            writer.WriteCharacterString(UniversalTagNumber.IA5String, uri, UriTag);
            if (dnsNamesOrAddresses is not null)
            {
                foreach (var name in dnsNamesOrAddresses)
                {
                    if (IPAddress.TryParse(name, out var address))
                    {
                        writer.WriteOctetString(address.GetAddressBytes(), IpTag);
                    }
                    else
                    {
                        writer.WriteCharacterString(UniversalTagNumber.IA5String, name, DnsTag);
                    }
                }
            }
        }
        return new X509Extension("2.5.29.17", writer.Encode(), critical: false);
    }
}
