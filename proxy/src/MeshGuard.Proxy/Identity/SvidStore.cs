using System.Security.Cryptography;
using MeshGuard.Contracts;
using MeshGuard.Proxy.Runtime;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Identity;

/// <summary>
/// Keeps the current SVID (chain, key 0600) and trust bundle in the sidecar's state directory, so that a
/// restart while the control plane is away can go on with the identity it had, as long as it is valid. The files are
/// written by <see cref="StateFileWriter"/>, off the caller's thread.
/// </summary>
internal sealed class SvidStore(string directory, StateFileWriter writer)
{
    private string ChainFile => Path.Combine(directory, "svid.pem");

    private string KeyFile => Path.Combine(directory, "svid.key");

    private string BundleFile => Path.Combine(directory, "bundle.pem");

    public void Save(X509Svid svid, TrustBundle bundle, ECDsa key)
    {
        // Key before chain (the writer keeps the order): a chain on disk always has its key.
        writer.Write(KeyFile, key.ExportPkcs8PrivateKeyPem(), secret: true);
        writer.Write(ChainFile, svid.ChainPem(), secret: true);
        SaveBundle(bundle);
    }

    /// <summary>A new bundle for the SVID on disk (a root rotation), so a restart trusts what the running sidecar trusted.</summary>
    public void SaveBundle(TrustBundle bundle) => writer.Write(BundleFile, bundle.ToPem(), secret: true);

    /// <summary>The stored SVID if there is one that is still valid and verifies against <paramref name="trusted"/>.</summary>
    public (X509Svid Svid, TrustBundle Bundle)? TryLoad(TrustBundle trusted, DateTimeOffset now, out string? reason)
    {
        reason = null;
        if (!File.Exists(KeyFile) || !File.Exists(ChainFile))
        {
            reason = "no stored SVID";
            return null;
        }
        try
        {
            SecureFile.RequireOwnerOnly(KeyFile);
            using var key = ECDsa.Create();
            key.ImportFromPem(File.ReadAllText(KeyFile));
            var bundle = File.Exists(BundleFile) ? TrustBundle.FromPem(File.ReadAllText(BundleFile)) : trusted;
            if (bundle.TrustDomain != trusted.TrustDomain)
            {
                reason = $"stored bundle is for trust domain {bundle.TrustDomain}";
                return null;
            }
            var svid = X509Svid.Create(File.ReadAllText(ChainFile), key, trusted, now);
            return (svid, bundle);
        }
        catch (Exception e) when (e is FormatException or CryptographicException or IOException or ArgumentException or InsecureFileException)
        {
            reason = e.Message;
            return null;
        }
    }
}
