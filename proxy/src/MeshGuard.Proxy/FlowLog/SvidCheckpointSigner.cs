using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.FlowLog;
using MeshGuard.Proxy.Identity;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.FlowLog;

/// <summary>
/// Signs flow-log checkpoints with the sidecar's current SVID key; the SVID chain goes with the signature.
/// The key handle and the chain's PEM are made once per SVID, not per checkpoint (dozens a second under load).
/// </summary>
internal sealed class SvidCheckpointSigner(ICredentialSource credentials) : ICheckpointSigner
{
    private sealed record Prepared(X509Svid Svid, ECDsa Key, string ChainPem);

    private Prepared? _prepared;

    public string WorkloadId => credentials.Current.IdText;

    // Only the flow-log writer thread signs.
    public (byte[] Signature, string ChainPem) Sign(byte[] payload)
    {
        var svid = credentials.Current.Svid;
        var prepared = _prepared;
        if (prepared is null || !ReferenceEquals(prepared.Svid, svid))
        {
            // GetECDsaPrivateKey hands out an object of its own: disposing it leaves the certificate's key alone.
            prepared?.Key.Dispose();
            prepared = new Prepared(svid, svid.Certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("the SVID has no private key"), svid.ChainPem());
            _prepared = prepared;
        }
        return (prepared.Key.SignData(payload, HashAlgorithmName.SHA256), prepared.ChainPem);
    }
}
