using System.Collections.Concurrent;
using System.Text.Json;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.FlowLog;
using MeshGuard.FlowStore;

namespace MeshGuard.ControlPlane.FlowCollection;

/// <summary>
/// The records of the collected logs, for the console: newest first, within a time window, each with the log
/// it came from and that log's verification. Verification is of the copy as held (chain, seqs, signatures) and
/// is done again only when the copy grew. Bounded: at most <see cref="MaxRecords"/> records per read.
/// </summary>
internal sealed class CollectedFlows(CollectedFlowLogs logs, CertificateAuthority ca) : ICollectedFlows
{
    internal const int MaxRecords = 50_000;

    private readonly ConcurrentDictionary<string, (string Stamp, LogVerification Result)> _verified = new(StringComparer.Ordinal);

    public Task<IReadOnlyList<LogVerification>> LogsAsync(CancellationToken cancellation) => Task.FromResult<IReadOnlyList<LogVerification>>(Logs());

    public Task<List<CollectedFlow>> ReadAsync(StoredFlowFilter filter, CancellationToken cancellation) =>
        Task.FromResult(Matching(filter).Take(filter.Limit ?? MaxRecords).ToList());

    public Task<FlowPage> PageAsync(StoredFlowFilter filter, int shown, CancellationToken cancellation)
    {
        var matching = Matching(filter).ToList();
        List<DecidedBy> decidedBy = !FlowPage.NamesAnEdge(filter) ? [] : [.. matching
            .GroupBy(static f => (Decision: f.Record.Text("decision") ?? "", Policy: f.Record.Text("policy") ?? "", Rule: f.Record.Text("rule") ?? ""))
            .Select(static g => new DecidedBy(g.Key.Decision, g.Key.Policy, g.Key.Rule, g.Count()))
            .OrderByDescending(static d => d.Requests)];
        return Task.FromResult(new FlowPage(matching.Count, matching.Take(shown).ToList(), decidedBy));
    }

    public Task<IReadOnlyList<CallCount>> CallsAsync(DateTimeOffset since, CancellationToken cancellation) => Task.FromResult(CallCount.Of(Read(since)));

    private IEnumerable<CollectedFlow> Matching(StoredFlowFilter filter) => Read(filter.Since ?? DateTimeOffset.MinValue).Where(f => Matches(f.Record, filter));

    /// <summary>What <see cref="StoredFlowFilter"/> selects in the store, applied to one record here.</summary>
    internal static bool Matches(JsonElement r, StoredFlowFilter filter) =>
        (filter.Direction is null || r.Text("direction") == filter.Direction)
        && (filter.NoSource ? r.Text("source_id") is null : filter.Source is null || r.Text("source_id") == filter.Source)
        && (filter.Destination is not { } d || r.Text("dest_id") == d || r.Text("dest_service") == d || (r.Text("dest_id") is null && r.Text("dest_addr") == d))
        && (filter.Decision is null || r.Text("decision") == filter.Decision);

    private List<LogVerification> Logs()
    {
        var all = new List<LogVerification>();
        foreach (var (workload, directory) in logs.Workloads())
        {
            all.Add(Verification(workload, directory));
        }
        return all;
    }

    private List<CollectedFlow> Read(DateTimeOffset since)
    {
        var flows = new List<CollectedFlow>();
        foreach (var (workload, directory) in logs.Workloads())
        {
            var verification = Verification(workload, directory);
            var files = FlowLogFormat.Files(directory);
            // Newest file first; a file whose last record is older than the window ends the walk.
            for (var i = files.Count - 1; i >= 0 && flows.Count < MaxRecords; i--)
            {
                var bytes = File.ReadAllBytes(files[i]);
                var newest = DateTimeOffset.MinValue;
                foreach (var (_, line, complete) in FlowLogFormat.Lines(bytes))
                {
                    if (!complete || !TryFlow(line, out var record, out var time))
                    {
                        continue;
                    }
                    newest = time > newest ? time : newest;
                    if (time >= since)
                    {
                        flows.Add(new CollectedFlow(time, record, line, verification));
                    }
                }
                if (newest < since)
                {
                    break;
                }
            }
        }
        flows.Sort(static (a, b) => b.Time.CompareTo(a.Time));
        if (flows.Count > MaxRecords)
        {
            flows.RemoveRange(MaxRecords, flows.Count - MaxRecords);
        }
        return flows;
    }

    private LogVerification Verification(string workload, string directory)
    {
        // Any file written since (a segment appended, or a line changed on disk) means verifying again.
        var stamp = new System.Text.StringBuilder();
        foreach (var file in FlowLogFormat.Files(directory))
        {
            var info = new FileInfo(file);
            stamp.Append(System.Globalization.CultureInfo.InvariantCulture, $"{info.Name}:{info.Length}:{info.LastWriteTimeUtc.Ticks};");
        }
        if (_verified.TryGetValue(directory, out var cached) && cached.Stamp == stamp.ToString())
        {
            return cached.Result;
        }
        var report = FlowLogVerifier.Verify(directory, ca.Bundle);
        var result = new LogVerification(workload, report.IsOk, report.LastSeq ?? 0, report.Summary);
        _verified[directory] = (stamp.ToString(), result);
        return result;
    }

    /// <summary>A line the console shows: a flow record (a JSON object of kind flow) with a time it can place.</summary>
    internal static bool TryFlow(ReadOnlyMemory<byte> line, out JsonElement record, out DateTimeOffset time)
    {
        time = default;
        try
        {
            using var document = JsonDocument.Parse(line);
            record = document.RootElement.Clone();
        }
        catch (JsonException)
        {
            record = default;
            return false;
        }
        return record.ValueKind == JsonValueKind.Object && record.Text("kind") == "flow"
            && DateTimeOffset.TryParse(record.Text("time"), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out time);
    }
}

/// <summary>One flow record of a collected log, with its line as held (for export) and the log's verification.</summary>
internal sealed record CollectedFlow(DateTimeOffset Time, JsonElement Record, ReadOnlyMemory<byte> Line, LogVerification Log);

/// <summary>How a collected log verified: <see cref="Summary"/> says what was checked, or the first problem.</summary>
internal sealed record LogVerification(string Workload, bool Verified, long LastSeq, string Summary);
