using System.Security.Cryptography.X509Certificates;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Ca;

/// <summary>
/// Rotating the mesh root with an overlapping bundle, in three steps on the data directory. Restart the
/// control plane after each one (a restart costs no request) and let it reach every sidecar before the next:
/// <list type="number">
/// <item><c>prepare</c>: a new root and intermediate in <c>ca/next</c>; the bundle holds old and new roots,
/// so sidecars learn the new root (from the next snapshot) while the old one still signs;</item>
/// <item><c>activate</c>: the new root signs; the old one moves to <c>ca/retired</c> and stays in the bundle,
/// so SVIDs it signed keep working until their holders renew (one SVID lifetime);</item>
/// <item><c>retire</c>: the retired roots leave the bundle and their keys are deleted; an SVID they signed is
/// refused from then on.</item>
/// </list>
/// </summary>
internal static class RootRotation
{
    private static readonly string[] CaFiles = ["root.crt", "root.key", "intermediate.crt", "intermediate.key"];

    public static string Prepare(DataDirectory data, TimeProvider time)
    {
        var trustDomain = ActiveTrustDomain(data);
        if (Directory.Exists(data.NextCaDirectory))
        {
            throw new InvalidOperationException($"a next root is already prepared in {data.NextCaDirectory}: activate it first");
        }
        CertificateAuthority.CreateFiles(data.NextCaDirectory, trustDomain, time);
        return WriteBundle(data, trustDomain, time, "prepared a new root; the bundle holds the active and the next root");
    }

    public static string Activate(DataDirectory data, TimeProvider time)
    {
        var trustDomain = ActiveTrustDomain(data);
        if (!File.Exists(Path.Combine(data.NextCaDirectory, "root.crt")))
        {
            throw new InvalidOperationException("no next root is prepared: run prepare first");
        }
        using var active = X509CertificateLoader.LoadCertificateFromFile(data.RootCertificate);
        var retired = Path.Combine(data.RetiredCaDirectory, $"{time.GetUtcNow():yyyyMMddTHHmmssZ}-{active.SerialNumber[..Math.Min(16, active.SerialNumber.Length)]}");
        Directory.CreateDirectory(retired);
        // Move the active CA aside, then the next one in; each move is atomic, and a crash between the two
        // leaves both sets of files on disk for an operator to finish by hand.
        foreach (var file in CaFiles)
        {
            File.Move(Path.Combine(data.CaDirectory, file), Path.Combine(retired, file));
        }
        foreach (var file in CaFiles)
        {
            File.Move(Path.Combine(data.NextCaDirectory, file), Path.Combine(data.CaDirectory, file));
        }
        Directory.Delete(data.NextCaDirectory);
        return WriteBundle(data, trustDomain, time, $"the next root signs now; the previous one is retired in {retired} and still trusted");
    }

    public static string Retire(DataDirectory data, TimeProvider time)
    {
        var trustDomain = ActiveTrustDomain(data);
        var removed = 0;
        if (Directory.Exists(data.RetiredCaDirectory))
        {
            foreach (var retired in Directory.GetDirectories(data.RetiredCaDirectory))
            {
                Directory.Delete(retired, recursive: true);
                removed++;
            }
        }
        return WriteBundle(data, trustDomain, time, $"retired {removed} root(s): the bundle holds the active root only");
    }

    private static string ActiveTrustDomain(DataDirectory data)
    {
        if (!File.Exists(data.RootCertificate))
        {
            throw new InvalidOperationException($"no CA in {data.CaDirectory}: start the control plane once to create it");
        }
        using var root = X509CertificateLoader.LoadCertificateFromFile(data.RootCertificate);
        return root.GetSpiffeId()?.TrustDomain ?? throw new InvalidOperationException($"{data.RootCertificate} names no trust domain");
    }

    private static string WriteBundle(DataDirectory data, string trustDomain, TimeProvider time, string what)
    {
        using var ca = CertificateAuthority.LoadOrCreate(data, trustDomain, time);
        SecureFile.WriteAtomically(data.TrustBundle, ca.Bundle.ToPem(), secret: false);
        return $"{what} ({ca.Bundle.Roots.Count} root(s) in {data.TrustBundle}); restart the control plane to serve it";
    }
}
