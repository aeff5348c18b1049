using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Spiffe;

namespace MeshGuard.Tests.Common;

/// <summary>
/// A CA minted in memory for tests: root and intermediate, and leaves of any shape, good or deliberately
/// wrong (CA:true, expired, keyCertSign, several URIs). Can also wrap a real CA loaded from PEM files.
/// </summary>
public sealed class TestCa
{
    public TestCa(string trustDomain = "mesh.local")
        : this(trustDomain, CreateRootAndIntermediate(trustDomain))
    {
    }

    private TestCa(string trustDomain, (X509Certificate2 Root, X509Certificate2 Intermediate) pair)
    {
        TrustDomain = trustDomain;
        Root = pair.Root;
        Intermediate = pair.Intermediate;
        Bundle = TrustBundle.Create(trustDomain, [X509CertificateLoader.LoadCertificate(Root.RawData)]);
    }

    public string TrustDomain { get; }

    public X509Certificate2 Root { get; }

    public X509Certificate2 Intermediate { get; }

    public TrustBundle Bundle { get; }

    /// <summary>Uses a CA on disk (the control plane's own): PEM certificates and keys.</summary>
    public static TestCa FromFiles(string trustDomain, string rootCrt, string rootKey, string intermediateCrt, string intermediateKey) =>
        new(trustDomain, (X509Certificate2.CreateFromPemFile(rootCrt, rootKey), X509Certificate2.CreateFromPemFile(intermediateCrt, intermediateKey)));

    public X509Certificate2Collection Intermediates => [X509CertificateLoader.LoadCertificate(Intermediate.RawData)];

    public sealed record LeafOptions
    {
        public string[] Uris { get; init; } = [];
        public bool IsCa { get; init; }
        public X509KeyUsageFlags KeyUsage { get; init; } = X509KeyUsageFlags.DigitalSignature;
        public DateTimeOffset? NotBefore { get; init; }
        public DateTimeOffset? NotAfter { get; init; }
        public bool SelfSigned { get; init; }

        /// <summary>An authority-information-access extension naming this URL as the issuer's certificate and OCSP responder.</summary>
        public string? AuthorityInformationAccessUrl { get; init; }

        /// <summary>extendedKeyUsage OIDs; null: serverAuth and clientAuth, as the mesh CA issues; empty: no extension.</summary>
        public string[]? ExtendedKeyUsages { get; init; }
    }

    public const string ServerAuth = "1.3.6.1.5.5.7.3.1";
    public const string ClientAuth = "1.3.6.1.5.5.7.3.2";

    public X509Certificate2 IssueLeaf(string spiffeId) => IssueLeaf(new LeafOptions { Uris = [spiffeId] });

    /// <summary>PEM of a leaf and this CA's intermediate: the chain a workload presents.</summary>
    public string ChainPem(X509Certificate2 leaf) => leaf.ExportCertificatePem() + "\n" + Intermediate.ExportCertificatePem() + "\n";

    /// <summary>A workload SVID (leaf with key, and chain) for <paramref name="spiffeId"/>, as a sidecar holds it.</summary>
    public X509Svid IssueSvid(string spiffeId)
    {
        var leaf = IssueLeaf(spiffeId);
        return X509Svid.Create(ChainPem(leaf), leaf.GetECDsaPrivateKey()!, Bundle, DateTimeOffset.UtcNow);
    }

    /// <summary>A leaf with its private key, signed by the intermediate (or by itself).</summary>
    public X509Certificate2 IssueLeaf(LeafOptions options)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=test-workload", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(options.IsCa, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(options.KeyUsage, true));
        var usages = options.ExtendedKeyUsages ?? [ServerAuth, ClientAuth];
        if (usages.Length > 0)
        {
            var oids = new OidCollection();
            foreach (var usage in usages)
            {
                oids.Add(new Oid(usage));
            }
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(oids, false));
        }
        if (options.Uris.Length > 0)
        {
            var writer = new System.Formats.Asn1.AsnWriter(System.Formats.Asn1.AsnEncodingRules.DER);
            using (writer.PushSequence())
            {
                foreach (var uri in options.Uris)
                {
                    writer.WriteCharacterString(System.Formats.Asn1.UniversalTagNumber.IA5String, uri,
                        new System.Formats.Asn1.Asn1Tag(System.Formats.Asn1.TagClass.ContextSpecific, 6));
                }
            }
            request.CertificateExtensions.Add(new X509Extension("2.5.29.17", writer.Encode(), false));
        }
        if (options.AuthorityInformationAccessUrl is { } aia)
        {
            request.CertificateExtensions.Add(new X509AuthorityInformationAccessExtension([aia + "/ocsp"], [aia + "/issuer.crt"]));
        }
        if (!options.SelfSigned)
        {
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Intermediate, true, false));
        }
        var now = DateTimeOffset.UtcNow;
        var notBefore = options.NotBefore ?? now.AddMinutes(-1);
        var notAfter = options.NotAfter ?? now.AddHours(1);
        if (!options.SelfSigned)
        {
            // A leaf cannot outlive or predate its issuer; a CA made a moment ago (the control plane's) bounds it.
            var issuerStart = new DateTimeOffset(Intermediate.NotBefore.ToUniversalTime());
            var issuerEnd = new DateTimeOffset(Intermediate.NotAfter.ToUniversalTime());
            notBefore = notBefore < issuerStart ? issuerStart : notBefore;
            notAfter = notAfter > issuerEnd ? issuerEnd : notAfter;
        }
        if (options.SelfSigned)
        {
            return request.CreateSelfSigned(notBefore, notAfter);
        }
        using var certificate = request.Create(Intermediate, notBefore, notAfter, RandomNumberGenerator.GetBytes(12));
        return certificate.CopyWithPrivateKey(key);
    }

    private static (X509Certificate2, X509Certificate2) CreateRootAndIntermediate(string trustDomain)
    {
        var now = DateTimeOffset.UtcNow;
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = CaRequest("CN=Test Root", rootKey, trustDomain, 1);
        var root = rootRequest.CreateSelfSigned(now.AddDays(-1), now.AddYears(1));
        using var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var intermediateRequest = CaRequest("CN=Test Intermediate", intermediateKey, trustDomain, 0);
        // Key identifiers let chain building tell apart CAs of the same name, as in a root rotation.
        intermediateRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(root, true, false));
        using var intermediatePublic = intermediateRequest.Create(root, now.AddDays(-1), now.AddMonths(6), RandomNumberGenerator.GetBytes(12));
        return (root, intermediatePublic.CopyWithPrivateKey(intermediateKey));
    }

    private static CertificateRequest CaRequest(string subject, ECDsa key, string trustDomain, int pathLength)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, pathLength, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(SubjectAltNames.Build(SpiffeId.Scheme + trustDomain));
        return request;
    }
}
