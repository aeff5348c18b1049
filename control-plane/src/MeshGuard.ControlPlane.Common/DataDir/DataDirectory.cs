namespace MeshGuard.ControlPlane.Common.DataDir;

/// <summary>
/// The layout of the control plane's data directory, shared by meshguard-cp (which owns it) and meshctl
/// (which creates tokens and reads the bundle in it).
/// </summary>
public sealed class DataDirectory(string root)
{
    public string Root { get; } = Path.GetFullPath(root);

    public string CaDirectory => Path.Combine(Root, "ca");
    public string RootCertificate => Path.Combine(CaDirectory, "root.crt");
    public string RootKey => Path.Combine(CaDirectory, "root.key");
    public string IntermediateCertificate => Path.Combine(CaDirectory, "intermediate.crt");
    public string IntermediateKey => Path.Combine(CaDirectory, "intermediate.key");

    /// <summary>A root (with its intermediate) prepared for rotation: trusted already, not yet signing.</summary>
    public string NextCaDirectory => Path.Combine(CaDirectory, "next");

    /// <summary>Roots that signed before the last rotation, one directory each: still trusted until retired.</summary>
    public string RetiredCaDirectory => Path.Combine(CaDirectory, "retired");

    /// <summary>The trust bundle (PEM roots) sidecars are given with <c>--cp-bundle</c>.</summary>
    public string TrustBundle => Path.Combine(Root, "bundle.pem");

    /// <summary>Revoked identities, one SPIFFE ID a line (<see cref="RevocationList"/>), watched by the control plane.</summary>
    public string Revocations => Path.Combine(Root, "revocations.txt");

    /// <summary>Which identities may serve a service besides the default one (<see cref="ServiceBindings"/>).</summary>
    public string ServiceBindings => Path.Combine(Root, "service-bindings.txt");

    /// <summary>AccessPolicy YAML files, watched by the control plane.</summary>
    public string PoliciesDirectory => Path.Combine(Root, "policies");

    /// <summary>What the control plane has in force, written for meshctl.</summary>
    public string StateDirectory => Path.Combine(Root, "state");

    public string PolicyStateFile => Path.Combine(StateDirectory, "policies.json");

    /// <summary>Where the running control plane's admin port is (written at start), for meshctl console url.</summary>
    public string AdminAddressFile => Path.Combine(StateDirectory, "admin-address");

    /// <summary>One-time console logins (<see cref="ConsoleLogins"/>), by hash.</summary>
    public string ConsoleLoginsDirectory => Path.Combine(StateDirectory, "console-logins");

    /// <summary>The flow logs sidecars uploaded, one directory per workload (see <see cref="CollectedFlowLog"/>).</summary>
    public string FlowsDirectory => Path.Combine(Root, "flows");

    /// <summary>A workload's uploaded flow log: its files as the sidecar wrote them, and a file naming the workload.</summary>
    public string CollectedFlowLog(string workloadId) => Path.Combine(FlowsDirectory, WitnessName(workloadId));

    /// <summary>The latest witnessed signed flow-log record of a workload (file named by a hash of its ID).</summary>
    public string WitnessFile(string workloadId) => Path.Combine(StateDirectory, "witness", WitnessName(workloadId) + ".json");

    /// <summary>The name a workload's witnessed record is kept under (here and in an etcd store).</summary>
    public static string WitnessName(string workloadId) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(workloadId)))[..32];

    /// <summary>Fails with a clear message when the directory is not there.</summary>
    public void RequireExists()
    {
        if (!Directory.Exists(Root))
        {
            throw new DirectoryNotFoundException($"data directory {Root} does not exist");
        }
    }
}
