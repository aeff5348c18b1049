using System.CommandLine;
using System.Text.Json;
using MeshGuard.CommandLine;
using MeshGuard.FlowLog;
using MeshGuard.FlowStore;
using MeshGuard.Spiffe;

namespace MeshGuard.Ctl.Commands;

/// <summary><c>meshctl flows verify|query|tail DIR</c>: what security reads, and proof that nobody touched it.</summary>
internal static class FlowsCommand
{
    public static Command Create() => new("flows", "flow logs") { Verify(), Export(), Query(), Tail() };

    private static Command Export()
    {
        var flowStore = SharedFlowStore.Option();
        var workload = CliOption.Text("--workload", "the workload whose log to export (a SPIFFE ID)");
        var output = CliOption.Text("--out", "the directory to write the log into (created; flows-NNNNNN.jsonl, one file per chain)");
        var export = new Command("export", "write a workload's log from the shared flow store as JSON Lines exactly as signed: `flows verify DIR` checks it offline")
        {
            flowStore, workload, output,
        };
        export.SetAction(parse => Cli.RunAsync(async () =>
        {
            await using var reading = SharedFlowStore.Open(parse, flowStore) ?? throw new CliUsageException("--flow-store is required");
            var id = CliOption.Required(parse, workload);
            var directory = CliOption.Required(parse, output);
            if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
            {
                throw new CliUsageException($"{directory}: not empty; export writes into a new or empty directory");
            }
            var (_, lines) = await reading.ExportAsync(id, directory, CancellationToken.None);
            if (lines == 0)
            {
                throw new CliUsageException($"{reading}: the flow store holds no line of {id}");
            }
            Console.WriteLine($"exported {lines} lines of {id} to {directory}");
        }));
        return export;
    }

    private static Command Verify()
    {
        var dir = new Argument<string?>("DIR") { Description = "a sidecar's flow log directory (or a control plane's copy, or an export)", Arity = ArgumentArity.ZeroOrOne };
        var bundle = CliOption.Text("--bundle", "the mesh trust bundle (PEM) the checkpoints must chain to");
        var data = CliOption.Text("--data", "control-plane data directory: also check against the checkpoint it witnessed");
        var store = SharedStore.Option();
        var flowStore = SharedFlowStore.Option();
        var workload = CliOption.Text("--workload", "with --flow-store: only this workload's log (a SPIFFE ID); default: every workload the store holds");
        var requireSignedTail = CliOption.Flag("--require-signed-tail", "fail (exit 3) when records follow the last signed record: nothing proves them yet");
        var verify = new Command("verify", "check the hash chain and every signed record of a log directory, or of every log in the shared flow store; exit 1 on any problem, 3 when a log is intact but not proven (no signed record, an unsigned tail with --require-signed-tail, or with --data a log the control plane never witnessed)")
        {
            dir, bundle, data, store, flowStore, workload, requireSignedTail,
        };
        verify.SetAction(parse => Cli.RunAsync(async () =>
        {
            var trust = TrustBundle.Load(CliOption.Required(parse, bundle));
            var outcome = VerifyOutcome.Ok;
            await using var stored = SharedFlowStore.Open(parse, flowStore);
            if (stored is { } reading)
            {
                if (parse.GetValue(dir) is not null)
                {
                    throw new CliUsageException("give a DIR or --flow-store, not both");
                }
                var workloads = parse.GetValue(workload) is { Length: > 0 } one ? [one] : await reading.WorkloadsAsync(CancellationToken.None);
                if (workloads.Count == 0)
                {
                    throw new CliUsageException($"{reading}: the flow store holds no log");
                }
                foreach (var id in workloads)
                {
                    // Exported as signed, into a directory of its own, and checked as any log is; then against the
                    // chain row, which says where the store took the log to.
                    var export = Directory.CreateTempSubdirectory("meshctl-flows-");
                    try
                    {
                        var (end, _) = await reading.ExportAsync(id, export.FullName, CancellationToken.None);
                        outcome = Worse(outcome, await VerifyDirectoryAsync(parse, data, store, requireSignedTail, export.FullName, trust, id, end));
                    }
                    finally
                    {
                        export.Delete(recursive: true);
                    }
                }
            }
            else
            {
                var directory = parse.GetValue(dir) ?? throw new CliUsageException("give a DIR (a flow log directory) or --flow-store");
                if (!Directory.Exists(directory))
                {
                    throw new CliUsageException($"{directory}: no such directory");
                }
                outcome = await VerifyDirectoryAsync(parse, data, store, requireSignedTail, directory, trust, null, null);
            }
            if (outcome == VerifyOutcome.Failed)
            {
                throw new VerifyFailedException();
            }
            if (outcome == VerifyOutcome.Unproven)
            {
                throw new VerifyUnprovenException();
            }
        }));
        return verify;
    }

    private enum VerifyOutcome
    {
        Ok,
        Unproven,
        Failed,
    }

    private static VerifyOutcome Worse(VerifyOutcome a, VerifyOutcome b) => (VerifyOutcome)Math.Max((int)a, (int)b);

    /// <summary>Checks one log directory and prints what it found; <paramref name="stored"/> names the workload of a log exported from the flow store.</summary>
    private static async Task<VerifyOutcome> VerifyDirectoryAsync(
        ParseResult parse, Option<string?> data, Option<string?> store, Option<bool> requireSignedTail, string directory, TrustBundle trust,
        string? stored, StoredChain? storedEnd)
    {
        var report = FlowLogVerifier.Verify(directory, trust);
        var prefix = stored is null ? "" : $"{stored}: ";
        if (report.Files == 0)
        {
            throw new CliUsageException(stored is null ? $"{directory}: no flow log files" : $"{stored}: the flow store holds no line of it");
        }
        var storeProblems = new List<string>();
        if (storedEnd is { } end)
        {
            // The export writes chain N as file N + 1: the last file says which chain the lines end in, even when
            // retention dropped every line of the earlier chains.
            var lastChain = (int)(FlowLogFormat.FileNumber(FlowLogFormat.Files(directory)[^1]) - 1);
            if (end.Mismatch(lastChain, report.LastSeq, report.LastHash) is { } mismatch)
            {
                storeProblems.Add(mismatch);
            }
        }
        // What nothing proves: no signature at all, an unsigned tail where one is not accepted, no witness where one is asked for.
        var unproven = new List<string>();
        if (report.LastSignedSeq is null)
        {
            unproven.Add("the log holds no valid signed record");
        }
        else if (report.UnsignedTail > 0 && parse.GetValue(requireSignedTail))
        {
            unproven.Add($"{report.UnsignedTail} record(s) follow the last signed record (--require-signed-tail)");
        }
        if (DeployedPolicies.Named(parse, data, store))
        {
            var (witness, where) = await WitnessedAsync(parse, data, store, report.Workload);
            if (witness is null)
            {
                unproven.Add($"the control plane ({where}) witnessed nothing for {report.Workload ?? "this log"}");
            }
            else
            {
                FlowLogVerifier.CheckWitness(report, directory, witness);
            }
        }
        List<string> problems = [.. report.Problems.Select(static p => p.ToString()), .. storeProblems];
        foreach (var problem in problems)
        {
            Console.WriteLine(prefix + problem);
        }
        foreach (var reason in unproven)
        {
            Console.WriteLine($"{prefix}not proven: {reason}");
        }
        var witnessed = report.WitnessedSeq is { } w ? $", witnessed seq {w}" : "";
        var summary = $"{report.Files} files, {report.Flows} flow records, {report.Checkpoints} signed records, last seq {report.LastSeq}{witnessed}, workload {report.Workload ?? "(unknown)"}; {report.Coverage}";
        var failed = problems.Count > 0;
        Console.WriteLine(
            failed ? $"{prefix}FAILED: {problems.Count} problems; {summary}"
            : unproven.Count > 0 ? $"{prefix}NOT PROVEN: {summary}"
            : $"{prefix}OK: {summary}");
        return failed ? VerifyOutcome.Failed : unproven.Count > 0 ? VerifyOutcome.Unproven : VerifyOutcome.Ok;
    }

    /// <summary>The record the control plane witnessed for <paramref name="workload"/>, from its data directory or the etcd store.</summary>
    private static Task<(byte[]? Record, string Where)> WitnessedAsync(ParseResult parse, Option<string?> data, Option<string?> store, string? workload) =>
        SharedStore.FromEitherAsync<(byte[]?, string)>(parse, store, data,
            directory => (workload is not null && File.Exists(directory.WitnessFile(workload)) ? File.ReadAllBytes(directory.WitnessFile(workload)) : null, directory.Root),
            async etcd =>
            {
                var kept = workload is null ? null : await etcd.GetAsync(MeshGuard.Etcd.EtcdKeys.Witness + MeshGuard.ControlPlane.Common.DataDir.DataDirectory.WitnessName(workload), CancellationToken.None);
                return (kept is { } found ? System.Text.Encoding.UTF8.GetBytes(found.Value) : null, etcd.Location.ToString());
            });

    private static Command Query()
    {
        var dir = new Argument<string?>("DIR") { Description = "a sidecar's flow log directory", Arity = ArgumentArity.ZeroOrOne };
        var flowStore = SharedFlowStore.Option();
        var from = CliOption.Text("--from", "only calls from this SPIFFE ID");
        var to = CliOption.Text("--to", "only calls to this SPIFFE ID or service");
        var decision = CliOption.Text("--decision", "allow | deny");
        var since = CliOption.Duration("--since", "only records this recent (e.g. 10m)", TimeSpan.Zero);
        var json = CliOption.Flag("--json", "print the matching records as JSON Lines");
        var query = new Command("query", "print the flow records that match, as a table: of one log directory, or of every log in the shared flow store")
        {
            dir, flowStore, from, to, decision, since, json,
        };
        query.SetAction(parse => Cli.RunAsync(async () =>
        {
            DateTimeOffset? cutoff = parse.GetValue(since) > TimeSpan.Zero ? DateTimeOffset.UtcNow - parse.GetValue(since) : null;
            var filter = new StoredFlowFilter(cutoff, Source: parse.GetValue(from), Destination: parse.GetValue(to), Decision: parse.GetValue(decision));
            var asJson = parse.GetValue(json);
            if (!asJson)
            {
                Console.WriteLine(Header);
            }
            await using var stored = SharedFlowStore.Open(parse, flowStore);
            if (stored is not null)
            {
                if (parse.GetValue(dir) is not null)
                {
                    throw new CliUsageException("give a DIR or --flow-store, not both");
                }
                // The store selects by its columns; each line is printed as it was signed.
                await foreach (var (_, line) in stored.FlowsAsync(filter, CancellationToken.None))
                {
                    using var document = JsonDocument.Parse(line);
                    Console.WriteLine(asJson ? System.Text.Encoding.UTF8.GetString(line) : Row(document.RootElement));
                }
                return;
            }
            foreach (var record in FlowLogReader.Records(parse.GetValue(dir) ?? throw new CliUsageException("give a DIR (a flow log directory) or --flow-store")))
            {
                if (record.Text("kind") != "flow"
                    || (filter.Source is { } f && record.Text("source_id") != f)
                    || (filter.Destination is { } t && record.Text("dest_id") != t && record.Text("dest_service") != t)
                    || (filter.Decision is { } d && record.Text("decision") != d)
                    || (cutoff is { } c && DateTimeOffset.TryParse(record.Text("time"), System.Globalization.CultureInfo.InvariantCulture, out var time) && time < c))
                {
                    continue;
                }
                Console.WriteLine(asJson ? record.GetRawText() : Row(record));
            }
        }));
        return query;
    }

    private static Command Tail()
    {
        var dir = new Argument<string>("DIR") { Description = "a sidecar's flow log directory" };
        var tail = new Command("tail", "print flow records as they are written, until Ctrl-C") { dir };
        tail.SetAction(async (parse, cancellation) => await Cli.RunAsync(async () =>
        {
            var directory = parse.GetValue(dir)!;
            Console.WriteLine(Header);
            long seen = -1;
            while (!cancellation.IsCancellationRequested)
            {
                foreach (var record in FlowLogReader.Records(directory))
                {
                    var seq = record.Number("seq");
                    if (seq > seen && record.Text("kind") == "flow")
                    {
                        Console.WriteLine(Row(record));
                    }
                    seen = Math.Max(seen, seq);
                }
                try
                {
                    await Task.Delay(500, cancellation);
                }
                catch (OperationCanceledException)
                {
                }
            }
        }));
        return tail;
    }

    private const string Header = "TIME                      DIR  SOURCE -> DESTINATION                                    REQUEST                    STATUS DECISION POLICY/RULE";

    /// <summary>One compact line of a flow record.</summary>
    public static string Row(JsonElement r)
    {
        var time = r.Text("time") is { Length: >= 23 } t ? t[..23] : r.Text("time");
        var direction = r.Text("direction") == "inbound" ? "in " : "out";
        var source = Short(r.Text("source_id"));
        var destination = r.Text("dest_service") ?? Short(r.Text("dest_id"));
        var policy = r.Text("policy") is { } p ? $"{p} {r.Text("rule")}" : r.Text("direction") == "inbound" ? "(default deny)" : "";
        var audit = r.Text("audit_decision") is { } a ? $" audit={a}" : "";
        return $"{time,-25} {direction}  {source + " -> " + destination,-56} {r.Text("method") + " " + r.Text("path"),-26} {r.Number("status"),6} {r.Text("decision") ?? "-",-8} {policy}{audit}";
    }

    private static string Short(string? id) => id is null ? "?" : id.StartsWith("spiffe://", StringComparison.Ordinal) ? id["spiffe://".Length..] : id;
}

/// <summary>Verify found problems (already printed): exit 1.</summary>
internal sealed class VerifyFailedException : Exception;

/// <summary>Verify found nothing changed, but nothing (or not everything asked for) is proven by a signature or witness: exit 3.</summary>
internal sealed class VerifyUnprovenException : Exception;
