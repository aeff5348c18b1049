using System.Diagnostics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Contracts.V1;
using MeshGuard.FlowLog;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlaneScale;

/// <summary>
/// A simulated sidecar's flow log for the ingest phase: written ahead of the clock with the sidecar's real SVID
/// key (inbound calls to it, a signed checkpoint every 1,000 records, as a sidecar under load writes), read back
/// in the segments a sidecar uploads, then sent one after another over the sidecar's own channel.
/// </summary>
internal sealed class SimulatedFlowLog(SpiffeId id, X509Svid svid, string directory)
{
    private readonly List<FlowLogSegment> _segments = [];

    public long Lines { get; private set; }

    public long Bytes { get; private set; }

    public void Write(int records)
    {
        using var key = svid.Certificate.GetECDsaPrivateKey()!;
        using (var writer = new FlowLogWriter(directory, new SvidSigner(id, svid, key), TimeProvider.System, 64 * 1024 * 1024, 1000))
        {
            writer.Open();
            for (var i = 0; i < records; i++)
            {
                writer.Append(new FlowRecord
                {
                    Time = DateTimeOffset.UtcNow,
                    Direction = FlowDirection.Inbound,
                    RequestId = $"req-{writer.Seq}",
                    SourceId = "spiffe://mesh.local/ns/scale/sa/caller",
                    DestId = id.ToString(),
                    DestService = "sim",
                    Method = "GET",
                    Path = $"/orders/{writer.Seq % 997}",
                    Status = 200,
                    Decision = "allow",
                    Policy = "scale/callers",
                    Rule = "caller",
                    BytesIn = 0,
                    BytesOut = 2,
                });
                if (writer.SinceCheckpoint >= 1000)
                {
                    writer.Checkpoint();
                }
            }
            writer.Flush();
        }
        var tail = new FlowLogTail(directory);
        tail.Seek(1);
        // As the sidecar's uploader reads: up to 1 MiB, ending at a signed record.
        while (tail.Read(1024 * 1024, 12 * 1024 * 1024) is { } segment)
        {
            _segments.Add(segment with { Lines = segment.Lines.ToArray() });
            Lines += segment.LastSeq - segment.FirstSeq + 1;
            Bytes += segment.Lines.Length;
            tail.Advance(segment);
        }
    }

    /// <summary>Uploads every segment in order; returns the seconds each upload took.</summary>
    public async Task<List<double>> UploadAsync(Witness.WitnessClient witness, CancellationToken cancellation)
    {
        var took = new List<double>(_segments.Count);
        foreach (var segment in _segments)
        {
            var started = Stopwatch.GetTimestamp();
            var ack = await witness.UploadInPartsAsync(segment.Lines, discontinuous: false, deadline: null, cancellation);
            if (ack.Seq != segment.LastSeq)
            {
                throw new InvalidOperationException($"{id}: segment to seq {segment.LastSeq} acknowledged at {ack.Seq}");
            }
            took.Add(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
        return took;
    }

    private sealed class SvidSigner(SpiffeId id, X509Svid svid, ECDsa key) : ICheckpointSigner
    {
        public string WorkloadId => id.ToString();

        public (byte[] Signature, string ChainPem) Sign(byte[] payload) => (key.SignData(payload, HashAlgorithmName.SHA256), svid.ChainPem());
    }
}
