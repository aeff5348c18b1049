using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.FlowLog;
using MeshGuard.Proxy.Identity;

namespace MeshGuard.Proxy.FlowLog;

/// <summary>Signs flow-log checkpoints with the sidecar's current SVID key; the SVID chain goes with the signature.</summary>
internal sealed class SvidCheckpointSigner(WorkloadIdentity identity) : ICheckpointSigner
{
    public string WorkloadId => identity.Id.ToString();

    public (byte[] Signature, string ChainPem) Sign(byte[] payload)
    {
        var svid = identity.Current.Svid;
        using var key = svid.Certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("the SVID has no private key");
        return (key.SignData(payload, HashAlgorithmName.SHA256), svid.ChainPem());
    }
}
