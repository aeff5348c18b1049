using MeshGuard.FlowLog;
using MeshGuard.Policy.Advice;

namespace MeshGuard.Ctl.Commands;

/// <summary>The inbound requests recorded in flow logs below a directory, as the policy advisers read them.</summary>
internal static class ObservedFlows
{
    /// <summary>The inbound requests of <c>--flows DIR</c> or, with <c>--flow-store URL</c>, of every log in the shared store.</summary>
    public static async Task<List<ObservedRequest>> ReadAsync(System.CommandLine.ParseResult parse, System.CommandLine.Option<string?> flows, System.CommandLine.Option<string?> flowStore)
    {
        await using var stored = SharedFlowStore.Open(parse, flowStore);
        if (stored is null)
        {
            return Read(parse.GetValue(flows) is { Length: > 0 } directory ? directory
                : throw new MeshGuard.CommandLine.CliUsageException("give --flows DIR (flow logs) or --flow-store URL"));
        }
        if (parse.GetValue(flows) is { Length: > 0 })
        {
            throw new MeshGuard.CommandLine.CliUsageException("give --flows or --flow-store, not both");
        }
        // The store holds each record once (its chains never fork), so nothing is a copy here.
        var observed = new List<ObservedRequest>();
        await foreach (var (_, line) in stored.FlowsAsync(new MeshGuard.FlowStore.StoredFlowFilter(Direction: "inbound"), CancellationToken.None))
        {
            using var document = System.Text.Json.JsonDocument.Parse(line);
            if (ObservedRequest.FromFlowRecord(document.RootElement) is { } request)
            {
                observed.Add(request);
            }
        }
        return observed;
    }

    public static List<ObservedRequest> Read(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new MeshGuard.CommandLine.CliUsageException($"{directory}: no such directory");
        }
        var observed = new List<ObservedRequest>();
        // A directory searched recursively can hold one record twice: a sidecar's own log beside the control
        // plane's copy of it, or two copies. A record's place in its workload's chain is named by the hash it
        // chains on to and its seq, so a record seen at a place already taken is a copy and counts once.
        var places = new HashSet<(string Prev, long Seq)>();
        foreach (var file in FlowLogFormat.FilesBelow(directory))
        {
            foreach (var r in FlowLogReader.Records(File.ReadAllBytes(file)))
            {
                if (ObservedRequest.FromFlowRecord(r) is { } request && (PlaceInChain(r) is not { } place || places.Add(place)))
                {
                    observed.Add(request);
                }
            }
        }
        return observed;
    }

    /// <summary>Null for a record that names no place (not written by a sidecar): it is counted as it is.</summary>
    private static (string, long)? PlaceInChain(System.Text.Json.JsonElement record) =>
        record.TryGetProperty("prev", out var prev) && prev.ValueKind == System.Text.Json.JsonValueKind.String
            && record.TryGetProperty("seq", out var seq) && seq.ValueKind == System.Text.Json.JsonValueKind.Number && seq.TryGetInt64(out var n)
            ? (prev.GetString()!, n)
            : null;
}
