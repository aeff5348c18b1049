using System.Globalization;
using MeshGuard.FlowLog;
using MeshGuard.FlowStore;

namespace MeshGuard.ControlPlane.FlowCollection;

/// <summary>
/// The console's flows from the store every replica shares: each page asks the store for what it shows (the newest
/// records of its filter by the indexes; totals and the graph from the edge counts kept per minute and hour), never
/// reads a log; each log's state comes from its chain row: verified on arrival up to its watermark, and what the last
/// audit (<see cref="FlowStoreAudit"/>) found. So every replica's console shows the same mesh.
/// </summary>
internal sealed class StoredCollectedFlows(StoredFlowLogs logs) : ICollectedFlows
{
    public async Task<IReadOnlyList<LogVerification>> LogsAsync(CancellationToken cancellation) =>
        [.. (await logs.ChainsAsync(cancellation)).Where(static c => c.Lines > 0).Select(Verification)];

    public async Task<List<CollectedFlow>> ReadAsync(StoredFlowFilter filter, CancellationToken cancellation)
    {
        var verifications = (await LogsAsync(cancellation)).ToDictionary(static v => v.Workload, StringComparer.Ordinal);
        var flows = new List<CollectedFlow>();
        await foreach (var (workload, line) in logs.FlowsAsync(filter with { NewestFirst = true, Limit = filter.Limit ?? CollectedFlows.MaxRecords }, cancellation))
        {
            if (!CollectedFlows.TryFlow(line, out var record, out var time))
            {
                continue;
            }
            flows.Add(new CollectedFlow(time, record, line,
                verifications.GetValueOrDefault(workload) ?? new LogVerification(workload, false, 0, "the store holds no chain row for this log")));
        }
        return flows;
    }

    public async Task<FlowPage> PageAsync(StoredFlowFilter filter, int shown, CancellationToken cancellation)
    {
        var newest = await ReadAsync(filter with { Limit = shown }, cancellation);
        // Records a callee decided, by identities and decision, are what the edge counts count: the page's total and
        // its deciding rules come from a few rows per hour. Anything else is counted in the lines, up to a bound.
        if (filter is { Direction: "inbound", Since: { } since } && (filter.Destination is null || filter.Destination.StartsWith("spiffe://", StringComparison.Ordinal)))
        {
            var calls = await logs.CallsAsync(since, cancellation, filter.NoSource ? "" : filter.Source, filter.Destination, filter.Decision);
            IReadOnlyList<DecidedBy> decidedBy = !FlowPage.NamesAnEdge(filter) ? []
                : [.. calls.GroupBy(static c => (c.Decision, c.Policy, c.Rule)).Select(static g => new DecidedBy(g.Key.Decision, g.Key.Policy, g.Key.Rule, g.Sum(static c => c.Calls)))
                    .OrderByDescending(static d => d.Requests)];
            return new FlowPage(calls.Sum(static c => c.Calls), newest, decidedBy);
        }
        return new FlowPage(await logs.CountAsync(filter, FlowPage.CountedUpTo, cancellation), newest, []);
    }

    public async Task<IReadOnlyList<CallCount>> CallsAsync(DateTimeOffset since, CancellationToken cancellation) =>
        [.. (await logs.CallsAsync(since, cancellation)).GroupBy(static c => (c.Source, c.Destination, c.Decision))
            .Select(static g => new CallCount(g.Key.Source, g.Key.Destination, g.Key.Decision, g.Sum(static c => c.Calls)))];

    /// <summary>A chain row as the console shows it: checked on arrival, and audited or not yet.</summary>
    internal static LogVerification Verification(StoredChain chain)
    {
        var arrival = string.Create(CultureInfo.InvariantCulture, $"verified on arrival through seq {chain.VerifiedSeq}");
        var audited = chain.Audited is { } at ? at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) : "";
        return chain.AuditProblems switch
        {
            null => new LogVerification(chain.Workload, true, chain.LastSeq, arrival + "; not audited in the store yet"),
            0 => new LogVerification(chain.Workload, true, chain.LastSeq, $"{arrival}; audit at {audited}: {chain.AuditSummary}"),
            _ => new LogVerification(chain.Workload, false, chain.LastSeq, $"audit at {audited}: {chain.AuditSummary}"),
        };
    }
}
