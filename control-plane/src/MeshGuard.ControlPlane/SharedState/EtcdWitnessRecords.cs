using System.Text.Json;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.Etcd;
using MeshGuard.FlowLog;

namespace MeshGuard.ControlPlane.SharedState;

/// <summary>
/// Witness records in etcd (<c>/meshguard/witness/NAME</c>), so a sidecar that moves to another replica keeps
/// one witnessed history: a record replaces the kept one only if its sequence number is higher, by a
/// transaction on the kept one's revision (two replicas writing at once cannot step the record back).
/// </summary>
internal sealed class EtcdWitnessRecords(EtcdConnection etcd) : IWitnessRecords
{
    public async Task<long> KeepAsync(string workloadId, ReadOnlyMemory<byte> line, long seq, CancellationToken cancellation)
    {
        var key = EtcdKeys.Witness + DataDirectory.WitnessName(workloadId);
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var kept = await etcd.GetAsync(key, cancellation);
            if (kept is { } found)
            {
                using var document = JsonDocument.Parse(found.Value);
                var keptSeq = document.RootElement.Number("seq");
                if (keptSeq >= seq)
                {
                    return keptSeq;
                }
            }
            var write = EtcdTxn.When(EtcdTxn.Unchanged(key, kept?.ModRevision ?? 0), EtcdTxn.Put(key, Google.Protobuf.ByteString.CopyFrom(line.Span)));
            if ((await etcd.TxnAsync(write, cancellation)).Succeeded)
            {
                return seq;
            }
        }
        throw new IOException($"the witness record of {workloadId} kept changing under five attempts");
    }
}
