using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Ca;

/// <summary>
/// The mesh CA: a root that only signs the intermediate, and an intermediate that signs SVIDs. Created on
/// first start (ECDSA P-256, key files 0600); later starts load them and refuse key files that group or
/// others can read. The trust bundle holds the active root and, during a rotation (<see cref="RootRotation"/>),
/// the prepared next root or the roots retired by the last activation. With the etcd store the intermediate is
/// renewed by the leading replica once two thirds of its life have passed (<see cref="RenewIntermediateIfDue"/>)
/// and every replica switches to it (<see cref="UseIntermediate"/>); the bundle, roots only, does not change.
/// </summary>
internal sealed class CertificateAuthority : IDisposable
{
    private static readonly TimeSpan RootLifetime = TimeSpan.FromDays(3650);
    private static readonly TimeSpan IntermediateLifetime = TimeSpan.FromDays(365);
    // Issued SVIDs start a little in the past so that a peer whose clock is slightly behind accepts them.
    private static readonly TimeSpan Backdate = TimeSpan.FromSeconds(30);

    private readonly TimeProvider _time;
    private X509Certificate2 _intermediate;
    // The intermediate before the last switch: SVIDs it issued a moment ago still get their chain from it.
    private X509Certificate2? _previous;

    private CertificateAuthority(string trustDomain, X509Certificate2 root, X509Certificate2 intermediate, IReadOnlyList<X509Certificate2> otherRoots, TimeProvider time)
    {
        TrustDomain = trustDomain;
        Root = root;
        _intermediate = intermediate;
        Bundle = TrustBundle.Create(trustDomain, [root, .. otherRoots]);
        _time = time;
    }

    public string TrustDomain { get; }

    public X509Certificate2 Root { get; }

    /// <summary>The signing intermediate, with its private key.</summary>
    public X509Certificate2 Intermediate => Volatile.Read(ref _intermediate);

    /// <summary>Signs with <paramref name="next"/> from now on; it must be issued by this CA's root and hold its key.</summary>
    public void UseIntermediate(X509Certificate2 next)
    {
        if (!next.HasPrivateKey || !IssuedBy(next, Root) || next.GetSpiffeId()?.TrustDomain != TrustDomain)
        {
            throw new InvalidOperationException($"intermediate {next.Subject} ({next.Thumbprint}) is not one of this CA's root, or has no key");
        }
        _previous = Interlocked.Exchange(ref _intermediate, next);
    }

    public TrustBundle Bundle { get; }

    /// <summary>Loads the CA from the data directory, creating it on first start.</summary>
    public static CertificateAuthority LoadOrCreate(DataDirectory data, string trustDomain, TimeProvider time)
    {
        if (!Directory.Exists(data.CaDirectory))
        {
            CreateFiles(data.CaDirectory, trustDomain, time);
        }
        return FromMaterial(ReadMaterial(data), trustDomain, data.CaDirectory, time, OtherTrustedRoots(data, trustDomain));
    }

    /// <summary>The CA files of the data directory; key files must be 0600.</summary>
    internal static CaMaterial ReadMaterial(DataDirectory data)
    {
        foreach (var file in new[] { data.RootCertificate, data.IntermediateCertificate })
        {
            if (!File.Exists(file))
            {
                throw new InvalidOperationException($"CA file {file} is missing; restore {data.CaDirectory} from backup");
            }
        }
        foreach (var keyFile in new[] { data.RootKey, data.IntermediateKey })
        {
            if (!File.Exists(keyFile))
            {
                throw new InvalidOperationException($"CA key file {keyFile} is missing; restore {data.CaDirectory} from backup");
            }
            SecureFile.RequireOwnerOnly(keyFile);
        }
        return new CaMaterial(
            File.ReadAllText(data.RootCertificate), File.ReadAllText(data.RootKey),
            File.ReadAllText(data.IntermediateCertificate), File.ReadAllText(data.IntermediateKey));
    }

    /// <summary>The prepared next root and the retired roots: trusted beside the active one while a rotation runs.</summary>
    private static List<X509Certificate2> OtherTrustedRoots(DataDirectory data, string trustDomain)
    {
        var files = new List<string>();
        var next = Path.Combine(data.NextCaDirectory, "root.crt");
        if (File.Exists(next))
        {
            files.Add(next);
        }
        if (Directory.Exists(data.RetiredCaDirectory))
        {
            foreach (var retired in Directory.GetDirectories(data.RetiredCaDirectory).Order(StringComparer.Ordinal))
            {
                var file = Path.Combine(retired, "root.crt");
                if (File.Exists(file))
                {
                    files.Add(file);
                }
            }
        }
        var roots = new List<X509Certificate2>();
        foreach (var file in files)
        {
            var root = X509Certificate2.CreateFromPem(File.ReadAllText(file));
            if (root.GetSpiffeId()?.TrustDomain != trustDomain)
            {
                throw new InvalidOperationException($"root {file} is not for trust domain '{trustDomain}'");
            }
            roots.Add(root);
        }
        return roots;
    }

    /// <summary>Writes a new root and intermediate into <paramref name="directory"/>, which must not exist yet.</summary>
    internal static void CreateFiles(string directory, string trustDomain, TimeProvider time)
    {
        var material = CreateMaterial(trustDomain, time);
        // Everything is written into a fresh sibling directory that is renamed into place at the end, so a
        // crash half-way leaves no CA at all rather than half of one.
        var staging = directory + $".new-{Environment.ProcessId}";
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }
        Directory.CreateDirectory(staging);
        SecureFile.WriteAtomically(Path.Combine(staging, "root.key"), material.RootKeyPem, secret: true);
        SecureFile.WriteAtomically(Path.Combine(staging, "intermediate.key"), material.IntermediateKeyPem, secret: true);
        SecureFile.WriteAtomically(Path.Combine(staging, "root.crt"), material.RootPem, secret: false);
        SecureFile.WriteAtomically(Path.Combine(staging, "intermediate.crt"), material.IntermediatePem, secret: false);
        Directory.Move(staging, directory);
    }

    /// <summary>A new root and intermediate, as PEM.</summary>
    internal static CaMaterial CreateMaterial(string trustDomain, TimeProvider time)
    {
        var now = time.GetUtcNow();
        var trustDomainId = SpiffeId.Scheme + trustDomain;
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = CreateCaRequest($"CN=MeshGuard Root CA,O={trustDomain}", rootKey, trustDomainId, pathLength: 1);
        using var root = rootRequest.CreateSelfSigned(now - Backdate, now + RootLifetime);

        using var intermediateKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var intermediateRequest = CreateCaRequest($"CN=MeshGuard Intermediate CA,O={trustDomain}", intermediateKey, trustDomainId, pathLength: 0);
        intermediateRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(root, true, false));
        using var intermediate = intermediateRequest.Create(root, now - Backdate, now + IntermediateLifetime, NewSerial());
        return new CaMaterial(
            root.ExportCertificatePem() + "\n", rootKey.ExportPkcs8PrivateKeyPem(),
            intermediate.ExportCertificatePem() + "\n", intermediateKey.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>The CA from its PEM (kept in a shared store), checked to be of <paramref name="trustDomain"/>.</summary>
    internal static CertificateAuthority FromMaterial(
        CaMaterial material, string trustDomain, string source, TimeProvider time, IReadOnlyList<X509Certificate2>? otherRoots = null)
    {
        var root = X509Certificate2.CreateFromPem(material.RootPem, material.RootKeyPem);
        var intermediate = X509Certificate2.CreateFromPem(material.IntermediatePem, material.IntermediateKeyPem);
        var rootId = root.GetSpiffeId();
        if (rootId is null || rootId.TrustDomain != trustDomain)
        {
            throw new InvalidOperationException($"the CA in {source} is for trust domain '{rootId?.TrustDomain}', not '{trustDomain}'");
        }
        return new CertificateAuthority(trustDomain, root, intermediate, otherRoots ?? [], time);
    }

    private static CertificateRequest CreateCaRequest(string subject, ECDsa key, string trustDomainId, int pathLength)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, pathLength, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(SubjectAltNames.Build(trustDomainId));
        return request;
    }

    /// <summary>
    /// Issues an X.509-SVID for <paramref name="id"/> over the CSR's public key. The CSR's own extensions are
    /// never copied: the SAN comes from the attested identity alone.
    /// </summary>
    public X509Certificate2 IssueSvid(SvidSigningRequest csr, SpiffeId id, TimeSpan ttl, IReadOnlyList<string>? dnsNames = null)
    {
        // The last line of defence for every way in (token, service account, renewal): an SVID names a workload.
        if (!id.IsWorkload)
        {
            throw new ArgumentException($"'{id}' names a trust domain, not a workload: no SVID is issued for it", nameof(id));
        }
        var now = _time.GetUtcNow();
        var notAfter = now + ttl;
        if (notAfter > Intermediate.NotAfter)
        {
            notAfter = Intermediate.NotAfter;
        }
        var request = new CertificateRequest(new X500DistinguishedName("CN=" + id.CommonName), csr.PublicKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Intermediate, true, false));
        request.CertificateExtensions.Add(SubjectAltNames.Build(id.ToString(), dnsNames));
        return request.Create(Intermediate, now - Backdate, notAfter, NewSerial());
    }

    /// <summary>PEM of the SVID chain as a workload presents it: leaf, then the intermediate that issued it.</summary>
    public string ChainPem(X509Certificate2 leaf)
    {
        var issuer = Intermediate;
        if (!IssuedBy(leaf, issuer) && _previous is { } previous && IssuedBy(leaf, previous))
        {
            issuer = previous;
        }
        return leaf.ExportCertificatePem() + "\n" + issuer.ExportCertificatePem() + "\n";
    }

    // By key identifier: the intermediates share a name, not a key.
    private static bool IssuedBy(X509Certificate2 certificate, X509Certificate2 issuer)
    {
        var authority = certificate.Extensions.OfType<X509AuthorityKeyIdentifierExtension>().FirstOrDefault()?.KeyIdentifier;
        var subject = issuer.Extensions.OfType<X509SubjectKeyIdentifierExtension>().FirstOrDefault()?.SubjectKeyIdentifierBytes;
        return authority is { } a && subject is { } b && a.Span.SequenceEqual(b.Span);
    }

    /// <summary>
    /// A new intermediate (new key, signed by the root) once two thirds of the current one's life have passed;
    /// null while it has longer to go. The new one lives as long as the first did, never past the root.
    /// </summary>
    internal static CaMaterial? RenewIntermediateIfDue(CaMaterial material, string trustDomain, TimeProvider time)
    {
        var now = time.GetUtcNow();
        using var current = X509Certificate2.CreateFromPem(material.IntermediatePem);
        var renewAt = current.NotBefore.ToUniversalTime() + ((current.NotAfter - current.NotBefore) * 2 / 3);
        if (now < renewAt)
        {
            return null;
        }
        using var root = X509Certificate2.CreateFromPem(material.RootPem, material.RootKeyPem);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = CreateCaRequest($"CN=MeshGuard Intermediate CA,O={trustDomain}", key, SpiffeId.Scheme + trustDomain, pathLength: 0);
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(root, true, false));
        var notAfter = now + IntermediateLifetime < root.NotAfter ? now + IntermediateLifetime : new DateTimeOffset(root.NotAfter);
        using var next = request.Create(root, now - Backdate, notAfter, NewSerial());
        return material with { IntermediatePem = next.ExportCertificatePem() + "\n", IntermediateKeyPem = key.ExportPkcs8PrivateKeyPem() };
    }

    private static byte[] NewSerial()
    {
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // positive
        serial[0] |= 0x01; // and no leading zero byte
        return serial;
    }

    public void Dispose()
    {
        Root.Dispose();
        Intermediate.Dispose();
        _previous?.Dispose();
    }
}

/// <summary>The CA's certificates and private keys, as PEM.</summary>
internal sealed record CaMaterial(string RootPem, string RootKeyPem, string IntermediatePem, string IntermediateKeyPem);
