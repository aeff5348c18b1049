using System.Collections.Concurrent;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.FlowLog;
using MeshGuard.FlowStore;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.FlowCollection;

/// <summary>
/// Each workload's flow log as its sidecar uploaded it, kept in the data directory in the sidecar's own line
/// format (flows/NAME/flows-NNNNNN.jsonl, and flows/NAME/workload naming it), so that the copy is checked by
/// the same verifier as the original. A segment is kept only whole and only when it chains on to the copy
/// (<see cref="FlowSegmentCheck"/>); a sidecar whose log lost what follows starts a new file, and the break
/// stays visible to verify as missing lines. Bounded: files roll at 8 MiB and the newest 32 are kept.
/// </summary>
internal sealed class CollectedFlowLogs(DataDirectory data, long maxFileBytes = 8 * 1024 * 1024, int retainFiles = 32) : IFlowSegmentStore
{
    internal const string WorkloadFileName = "workload";

    private readonly ConcurrentDictionary<string, Copy> _copies = new(StringComparer.Ordinal);
    private long _linesCollected;
    private long _segmentsRefused;

    /// <summary>Lines taken since the control plane started (meshguard_cp_flow_lines_collected_total).</summary>
    public long LinesCollected => Interlocked.Read(ref _linesCollected);

    /// <summary>Segments refused since the control plane started (meshguard_cp_flow_segments_refused_total).</summary>
    public long SegmentsRefused => Interlocked.Read(ref _segmentsRefused);

    /// <summary>The last seq held for <paramref name="workloadId"/>, 0 when nothing is.</summary>
    public long HeldSeq(string workloadId)
    {
        var copy = CopyOf(workloadId);
        lock (copy.Gate)
        {
            return copy.Last?.Seq ?? 0;
        }
    }

    public Task<long> HeldSeqAsync(string workloadId, CancellationToken cancellation) => Task.FromResult(HeldSeq(workloadId));

    public Task<FlowSegmentVerdict> AppendAsync(string workloadId, ReadOnlyMemory<byte> lines, bool discontinuous, TrustBundle bundle, CancellationToken cancellation) =>
        Task.FromResult(Append(workloadId, lines, discontinuous, bundle));

    public FlowSegmentVerdict Append(string workloadId, ReadOnlyMemory<byte> lines, bool discontinuous, TrustBundle bundle)
    {
        var copy = CopyOf(workloadId);
        lock (copy.Gate)
        {
            var verdict = FlowSegmentCheck.Check(lines, copy.Last, discontinuous, bundle, workloadId);
            if (verdict.Refusal is not null)
            {
                Interlocked.Increment(ref _segmentsRefused);
                return verdict;
            }
            Directory.CreateDirectory(copy.Directory);
            var workloadFile = Path.Combine(copy.Directory, WorkloadFileName);
            if (!File.Exists(workloadFile))
            {
                SecureFile.WriteAtomically(workloadFile, workloadId + "\n", secret: false);
            }
            if (copy.FileNumber == 0 || (discontinuous && copy.Last is not null) || copy.FileBytes + lines.Length > maxFileBytes && copy.FileBytes > 0)
            {
                copy.FileNumber++;
                copy.FileBytes = 0;
                var files = FlowLogFormat.Files(copy.Directory);
                for (var i = 0; i <= files.Count - retainFiles; i++)
                {
                    File.Delete(files[i]);
                }
            }
            using (var file = new FileStream(Path.Combine(copy.Directory, FlowLogFormat.FileName(copy.FileNumber)),
                FileMode.Append, FileAccess.Write, FileShare.Read))
            {
                file.Write(lines.Span);
            }
            copy.FileBytes += lines.Length;
            copy.Last = (verdict.LastSeq, verdict.LastHash);
            Interlocked.Add(ref _linesCollected, verdict.Lines);
            return verdict;
        }
    }

    /// <summary>Every workload with a collected log, and the directory that holds it.</summary>
    public IReadOnlyList<(string WorkloadId, string Directory)> Workloads()
    {
        var found = new List<(string, string)>();
        if (!Directory.Exists(data.FlowsDirectory))
        {
            return found;
        }
        foreach (var directory in Directory.GetDirectories(data.FlowsDirectory))
        {
            var workloadFile = Path.Combine(directory, WorkloadFileName);
            if (File.Exists(workloadFile))
            {
                found.Add((File.ReadAllText(workloadFile).Trim(), directory));
            }
        }
        found.Sort(static (a, b) => string.CompareOrdinal(a.Item1, b.Item1));
        return found;
    }

    private Copy CopyOf(string workloadId) => _copies.GetOrAdd(workloadId, static (id, data) => Copy.Open(data.CollectedFlowLog(id)), data);

    /// <summary>One workload's copy: where it ends (seq and hash of its last line) and the file being appended.</summary>
    private sealed class Copy
    {
        public readonly Lock Gate = new();
        public required string Directory { get; init; }
        public (long Seq, string Hash)? Last { get; set; }
        public long FileNumber { get; set; }
        public long FileBytes { get; set; }

        public static Copy Open(string directory)
        {
            var copy = new Copy { Directory = directory };
            var files = FlowLogFormat.Files(directory);
            if (files.Count == 0)
            {
                return copy;
            }
            copy.FileNumber = FlowLogFormat.FileNumber(files[^1]);
            copy.FileBytes = new FileInfo(files[^1]).Length;
            for (var i = files.Count - 1; i >= 0 && copy.Last is null; i--)
            {
                if (FlowLogFormat.LastCompleteLine(files[i]) is { } line && FlowLineHead.TryRead(line, out var head))
                {
                    copy.Last = (head.Seq, FlowLogFormat.HashHex(line));
                }
            }
            return copy;
        }
    }
}
