using MeshGuard.FlowLog;
using MeshGuard.FlowStore;

namespace MeshGuard.ControlPlane.FlowCollection;

/// <summary>
/// The collected flow records and the state of each workload's log, as the console reads them: from this replica's
/// data directory (<see cref="CollectedFlows"/>) or from the flow store every replica shares (<see cref="StoredCollectedFlows"/>).
/// Both select by the same <see cref="StoredFlowFilter"/>; the store does it with its indexes and counts.
/// </summary>
internal interface ICollectedFlows
{
    /// <summary>Every collected log's workload and its verification.</summary>
    Task<IReadOnlyList<LogVerification>> LogsAsync(CancellationToken cancellation);

    /// <summary>The records <paramref name="filter"/> selects, newest first, at most its limit (else <see cref="CollectedFlows.MaxRecords"/>).</summary>
    Task<List<CollectedFlow>> ReadAsync(StoredFlowFilter filter, CancellationToken cancellation);

    /// <summary>How many records <paramref name="filter"/> selects, the newest <paramref name="shown"/>, and which policies and rules decided them.</summary>
    Task<FlowPage> PageAsync(StoredFlowFilter filter, int shown, CancellationToken cancellation);

    /// <summary>Calls by caller, callee and decision since <paramref name="since"/>, as the callees recorded them.</summary>
    Task<IReadOnlyList<CallCount>> CallsAsync(DateTimeOffset since, CancellationToken cancellation);
}

/// <summary>
/// One page of the flows view: how many records match (counted from the edge counts where the filter allows, else up
/// to <see cref="CountedUpTo"/> and "more than" past it), the newest of them, and by which decision, policy and rule.
/// </summary>
internal sealed record FlowPage(long Total, IReadOnlyList<CollectedFlow> Newest, IReadOnlyList<DecidedBy> DecidedBy)
{
    public const long CountedUpTo = 10_000;

    /// <summary>A filter of one caller (or of calls without an identity) and one callee: its page says which rules decided it.</summary>
    public static bool NamesAnEdge(StoredFlowFilter filter) => (filter.Source is not null || filter.NoSource) && filter.Destination is not null;

    public bool MoreThanCounted => Total > CountedUpTo;
}

/// <summary>Requests decided one way by one policy's rule ("" where the record names none).</summary>
internal sealed record DecidedBy(string Decision, string Policy, string Rule, long Requests);

/// <summary>Calls from <see cref="Source"/> ("" without a mesh identity) to <see cref="Destination"/> decided <see cref="Decision"/>.</summary>
internal sealed record CallCount(string Source, string Destination, string Decision, long Calls)
{
    /// <summary>
    /// The calls of <paramref name="flows"/> as their callees recorded them: inbound records only (the callee's sidecar
    /// decides, so its record says what happened; the caller's outbound record of the same call is not counted again).
    /// The shared store keeps the same counts per minute as it takes segments.
    /// </summary>
    public static IReadOnlyList<CallCount> Of(IEnumerable<CollectedFlow> flows)
    {
        var counts = new Dictionary<(string, string, string), long>();
        foreach (var flow in flows)
        {
            var record = flow.Record;
            if (record.Text("direction") == "inbound" && record.Text("dest_id") is { } destination)
            {
                var key = (record.Text("source_id") ?? "", destination, record.Text("decision") ?? "deny");
                counts[key] = counts.GetValueOrDefault(key) + 1;
            }
        }
        return [.. counts.Select(static c => new CallCount(c.Key.Item1, c.Key.Item2, c.Key.Item3, c.Value))];
    }
}
