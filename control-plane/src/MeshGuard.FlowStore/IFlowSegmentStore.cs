using MeshGuard.FlowLog;
using MeshGuard.Spiffe;

namespace MeshGuard.FlowStore;

/// <summary>
/// Where a control plane keeps the flow-log segments its sidecars upload: its data directory (one replica), or
/// the shared PostgreSQL store every replica appends to (<see cref="PostgresFlowStore"/>). A segment is kept only
/// whole and only when it chains on to what the store holds for that workload (<see cref="FlowSegmentCheck"/>).
/// </summary>
public interface IFlowSegmentStore
{
    /// <summary>Lines taken since this control plane started (meshguard_cp_flow_lines_collected_total).</summary>
    long LinesCollected { get; }

    /// <summary>Segments refused since this control plane started (meshguard_cp_flow_segments_refused_total).</summary>
    long SegmentsRefused { get; }

    /// <summary>The last seq held for <paramref name="workloadId"/>, 0 when nothing is.</summary>
    Task<long> HeldSeqAsync(string workloadId, CancellationToken cancellation);

    /// <summary>Keeps the segment when it chains on (or says it does not), else refuses it and keeps nothing of it.</summary>
    Task<FlowSegmentVerdict> AppendAsync(string workloadId, ReadOnlyMemory<byte> lines, bool discontinuous, TrustBundle bundle, CancellationToken cancellation);
}
