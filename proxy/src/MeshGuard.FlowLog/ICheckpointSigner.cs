namespace MeshGuard.FlowLog;

/// <summary>Signs checkpoints with the workload's current SVID key; the chain travels with each signature.</summary>
public interface ICheckpointSigner
{
    /// <summary>The SPIFFE ID of the workload whose log this is.</summary>
    string WorkloadId { get; }

    /// <summary>ECDSA P-256 over SHA-256, IEEE P1363 form, and the PEM chain (leaf first) of the key that signed.</summary>
    (byte[] Signature, string ChainPem) Sign(byte[] payload);
}
