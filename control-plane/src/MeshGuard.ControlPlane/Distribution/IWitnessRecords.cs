using System.Text.Json;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.FlowLog;

namespace MeshGuard.ControlPlane.Distribution;

/// <summary>Where the witness keeps each workload's latest signed flow-log record: the data directory, or etcd for replicas.</summary>
internal interface IWitnessRecords
{
    /// <summary>Keeps <paramref name="line"/> unless a record with a sequence number at least <paramref name="seq"/> is kept; returns the kept one's.</summary>
    Task<long> KeepAsync(string workloadId, ReadOnlyMemory<byte> line, long seq, CancellationToken cancellation);
}

/// <summary>
/// The witness records of one control plane, in its data directory. The kept record's seq is remembered per workload
/// once read, so a segment's closing record costs its own write only: a busy sidecar sends a segment every few
/// hundred milliseconds, and the kept record was read and parsed again for each, under one lock for every workload
/// (with the write, 5 % of the control plane's samples while it took the bench's flow logs). Workloads do not wait
/// for each other; one workload's records are kept in seq order.
/// </summary>
internal sealed class WitnessFiles(DataDirectory data) : IWitnessRecords
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Kept> _kept = new(StringComparer.Ordinal);

    // A workload's gate and the seq of the record its file holds (-1: not read yet).
    private sealed class Kept
    {
        public readonly Lock Gate = new();
        public long Seq = -1;
    }

    public Task<long> KeepAsync(string workloadId, ReadOnlyMemory<byte> line, long seq, CancellationToken cancellation)
    {
        var kept = _kept.GetOrAdd(workloadId, static _ => new Kept());
        var file = data.WitnessFile(workloadId);
        lock (kept.Gate)
        {
            if (kept.Seq < 0 && File.Exists(file))
            {
                using var held = JsonDocument.Parse(File.ReadAllBytes(file));
                kept.Seq = held.RootElement.Number("seq");
            }
            if (kept.Seq >= seq)
            {
                return Task.FromResult(kept.Seq);
            }
            SecureFile.WriteAtomically(file, System.Text.Encoding.UTF8.GetString(line.Span), secret: false);
            kept.Seq = seq;
        }
        return Task.FromResult(seq);
    }
}
