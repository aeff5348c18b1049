using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace MeshGuard.Spiffe;

/// <summary>
/// The root certificates of one trust domain. Holds several roots so that a root can be rotated with
/// overlap. Immutable: a new bundle replaces the old one.
/// </summary>
public sealed class TrustBundle
{
    private TrustBundle(string trustDomain, X509Certificate2Collection roots)
    {
        TrustDomain = trustDomain;
        Roots = roots;
    }

    public string TrustDomain { get; }

    public X509Certificate2Collection Roots { get; }

    public static TrustBundle Create(string trustDomain, IEnumerable<X509Certificate2> roots)
    {
        if (!SpiffeId.TryParse(SpiffeId.Scheme + trustDomain, out _, out var error))
        {
            throw new ArgumentException($"invalid trust domain '{trustDomain}': {error}", nameof(trustDomain));
        }
        var collection = new X509Certificate2Collection();
        foreach (var root in roots)
        {
            if (!root.IsCertificateAuthority())
            {
                throw new ArgumentException($"bundle certificate {root.Subject} is not a CA", nameof(roots));
            }
            collection.Add(root);
        }
        if (collection.Count == 0)
        {
            throw new ArgumentException("a trust bundle needs at least one root", nameof(roots));
        }
        return new TrustBundle(trustDomain, collection);
    }

    /// <summary>
    /// Reads a PEM bundle. The trust domain is taken from the roots' URI SAN (<c>spiffe://td</c>), which
    /// every MeshGuard root carries; all roots must agree.
    /// </summary>
    public static TrustBundle FromPem(string pem)
    {
        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPem(pem);
        }
        catch (System.Security.Cryptography.CryptographicException e)
        {
            throw new FormatException($"trust bundle is not valid PEM: {e.Message}", e);
        }
        if (certificates.Count == 0)
        {
            throw new FormatException("trust bundle holds no certificate");
        }
        string? trustDomain = null;
        foreach (var certificate in certificates)
        {
            var id = certificate.GetSpiffeId()
                ?? throw new FormatException($"bundle certificate {certificate.Subject} has no spiffe:// trust domain URI SAN");
            if (trustDomain is not null && trustDomain != id.TrustDomain)
            {
                throw new FormatException($"bundle mixes trust domains '{trustDomain}' and '{id.TrustDomain}'");
            }
            trustDomain = id.TrustDomain;
        }
        try
        {
            return Create(trustDomain!, certificates);
        }
        catch (ArgumentException e)
        {
            throw new FormatException(e.Message, e);
        }
    }

    public static TrustBundle Load(string path)
    {
        string pem;
        try
        {
            pem = File.ReadAllText(path);
        }
        catch (IOException e)
        {
            throw new FormatException($"cannot read trust bundle {path}: {e.Message}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new FormatException($"cannot read trust bundle {path}: {e.Message}", e);
        }
        try
        {
            return FromPem(pem);
        }
        catch (FormatException e)
        {
            throw new FormatException($"{path}: {e.Message}", e);
        }
    }

    public string ToPem()
    {
        var builder = new StringBuilder();
        foreach (var root in Roots)
        {
            builder.Append(root.ExportCertificatePem()).Append('\n');
        }
        return builder.ToString();
    }
}
