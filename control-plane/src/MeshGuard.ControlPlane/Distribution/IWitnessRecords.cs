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

/// <summary>The witness records of one control plane, in its data directory.</summary>
internal sealed class WitnessFiles(DataDirectory data) : IWitnessRecords
{
    private readonly Lock _gate = new();

    public Task<long> KeepAsync(string workloadId, ReadOnlyMemory<byte> line, long seq, CancellationToken cancellation)
    {
        var file = data.WitnessFile(workloadId);
        lock (_gate)
        {
            if (File.Exists(file))
            {
                using var kept = JsonDocument.Parse(File.ReadAllBytes(file));
                var keptSeq = kept.RootElement.Number("seq");
                if (keptSeq >= seq)
                {
                    return Task.FromResult(keptSeq);
                }
            }
            SecureFile.WriteAtomically(file, System.Text.Encoding.UTF8.GetString(line.Span), secret: false);
        }
        return Task.FromResult(seq);
    }
}
