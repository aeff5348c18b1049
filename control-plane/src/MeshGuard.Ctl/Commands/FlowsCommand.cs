using System.CommandLine;
using System.Text.Json;
using MeshGuard.CommandLine;
using MeshGuard.FlowLog;
using MeshGuard.Spiffe;

namespace MeshGuard.Ctl.Commands;

/// <summary><c>meshctl flows verify|query|tail DIR</c>: what security reads, and proof that nobody touched it.</summary>
internal static class FlowsCommand
{
    public static Command Create() => new("flows", "flow logs") { Verify(), Query(), Tail() };

    private static Command Verify()
    {
        var dir = new Argument<string>("DIR") { Description = "a sidecar's flow log directory" };
        var bundle = CliOption.Text("--bundle", "the mesh trust bundle (PEM) the checkpoints must chain to");
        var data = CliOption.Text("--data", "control-plane data directory: also check against the checkpoint it witnessed");
        var store = SharedStore.Option();
        var requireSignedTail = CliOption.Flag("--require-signed-tail", "fail (exit 3) when records follow the last signed record: nothing proves them yet");
        var verify = new Command("verify", "check the hash chain and every signed record; exit 1 on any problem, 3 when the log is intact but not proven (no signed record, an unsigned tail with --require-signed-tail, or with --data a log the control plane never witnessed)")
        {
            dir, bundle, data, store, requireSignedTail,
        };
        verify.SetAction(parse => Cli.RunAsync(async () =>
        {
            var directory = parse.GetValue(dir)!;
            if (!Directory.Exists(directory))
            {
                throw new CliUsageException($"{directory}: no such directory");
            }
            var report = FlowLogVerifier.Verify(directory, TrustBundle.Load(CliOption.Required(parse, bundle)));
            if (report.Files == 0)
            {
                throw new CliUsageException($"{directory}: no flow log files");
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
            foreach (var problem in report.Problems)
            {
                Console.WriteLine(problem);
            }
            foreach (var reason in unproven)
            {
                Console.WriteLine($"not proven: {reason}");
            }
            var witnessed = report.WitnessedSeq is { } w ? $", witnessed seq {w}" : "";
            var summary = $"{report.Files} files, {report.Flows} flow records, {report.Checkpoints} signed records, last seq {report.LastSeq}{witnessed}, workload {report.Workload ?? "(unknown)"}; {report.Coverage}";
            Console.WriteLine(
                !report.IsOk ? $"FAILED: {report.Problems.Count} problems; {summary}"
                : unproven.Count > 0 ? $"NOT PROVEN: {summary}"
                : $"OK: {summary}");
            if (!report.IsOk)
            {
                throw new VerifyFailedException();
            }
            if (unproven.Count > 0)
            {
                throw new VerifyUnprovenException();
            }
        }));
        return verify;
    }

    /// <summary>The record the control plane witnessed for <paramref name="workload"/>, from its data directory or the etcd store.</summary>
    private static Task<(byte[]? Record, string Where)> WitnessedAsync(ParseResult parse, Option<string?> data, Option<string?> store, string? workload) =>
        SharedStore.FromEitherAsync<(byte[]?, string)>(parse, store, data,
            directory => (workload is not null && File.Exists(directory.WitnessFile(workload)) ? File.ReadAllBytes(directory.WitnessFile(workload)) : null, directory.Root),
            async etcd =>
            {
                var kept = workload is null ? null : await etcd.GetAsync(MeshGuard.Store.EtcdKeys.Witness + Contracts.DataDir.DataDirectory.WitnessName(workload), CancellationToken.None);
                return (kept is { } found ? System.Text.Encoding.UTF8.GetBytes(found.Value) : null, etcd.Location.ToString());
            });

    private static Command Query()
    {
        var dir = new Argument<string>("DIR") { Description = "a sidecar's flow log directory" };
        var from = CliOption.Text("--from", "only calls from this SPIFFE ID");
        var to = CliOption.Text("--to", "only calls to this SPIFFE ID or service");
        var decision = CliOption.Text("--decision", "allow | deny");
        var since = CliOption.Duration("--since", "only records this recent (e.g. 10m)", TimeSpan.Zero);
        var json = CliOption.Flag("--json", "print the matching records as JSON Lines");
        var query = new Command("query", "print the flow records that match, as a table") { dir, from, to, decision, since, json };
        query.SetAction(parse => Cli.Run(() =>
        {
            var cutoff = parse.GetValue(since) > TimeSpan.Zero ? DateTimeOffset.UtcNow - parse.GetValue(since) : DateTimeOffset.MinValue;
            var asJson = parse.GetValue(json);
            if (!asJson)
            {
                Console.WriteLine(Header);
            }
            foreach (var record in FlowLogReader.Records(parse.GetValue(dir)!))
            {
                if (record.Text("kind") != "flow"
                    || (parse.GetValue(from) is { } f && record.Text("source_id") != f)
                    || (parse.GetValue(to) is { } t && record.Text("dest_id") != t && record.Text("dest_service") != t)
                    || (parse.GetValue(decision) is { } d && record.Text("decision") != d)
                    || (DateTimeOffset.TryParse(record.Text("time"), System.Globalization.CultureInfo.InvariantCulture, out var time) && time < cutoff))
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
