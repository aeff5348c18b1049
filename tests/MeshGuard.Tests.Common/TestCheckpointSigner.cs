using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.FlowLog;

namespace MeshGuard.Tests.Common;

/// <summary>
/// Signs flow-log checkpoints as a workload of a test CA, as the sidecar does with its SVID;
/// <paramref name="claimedWorkload"/> makes it claim another workload than its certificate names.
/// </summary>
public sealed class TestCheckpointSigner(TestCa ca, string workload, string? claimedWorkload = null) : ICheckpointSigner
{
    private readonly X509Certificate2 _leaf = ca.IssueLeaf(workload);

    public string WorkloadId => claimedWorkload ?? workload;

    public (byte[] Signature, string ChainPem) Sign(byte[] payload)
    {
        using var key = _leaf.GetECDsaPrivateKey()!;
        return (key.SignData(payload, HashAlgorithmName.SHA256), ca.ChainPem(_leaf));
    }
}
