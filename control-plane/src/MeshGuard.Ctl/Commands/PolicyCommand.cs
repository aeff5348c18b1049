using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Policy.Advice;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Parsing;

namespace MeshGuard.Ctl.Commands;

/// <summary><c>meshctl policy lint FILE|DIR</c> and <c>meshctl policy status --data DIR</c>.</summary>
internal static class PolicyCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("FILE|DIR") { Description = "a policy file, or a directory of them (recursively)" };
        var opaquePorts = CliOption.Text("--opaque-ports", "the app ports the sidecars declare opaque (comma-separated): say what rules naming methods, paths or headers mean there");
        var lint = new Command("lint", "check AccessPolicy files; print file:line:column: reason for every mistake") { path, opaquePorts };
        lint.SetAction(parse => Cli.Run(() =>
        {
            var results = PolicyDirectory.Load(parse.GetValue(path)!);
            var opaque = PortList.Parse(parse.GetValue(opaquePorts), "--opaque-ports");
            var errors = 0;
            var policies = 0;
            foreach (var result in results)
            {
                policies += result.Policies.Count;
                foreach (var error in result.Errors)
                {
                    Console.Error.WriteLine(error);
                    errors++;
                }
                foreach (var note in OpaquePortLint.Notes(result, opaque))
                {
                    Console.WriteLine("note: " + note);
                }
            }
            Console.WriteLine($"{results.Count} files, {policies} policies, {errors} errors");
            if (errors > 0)
            {
                throw new PolicyLintFailedException();
            }
        }));

        var data = CliOption.Text("--data", "control-plane data directory");
        var store = SharedStore.Option();
        var status = new Command("status", "the policies the control plane has in force, and refused files") { data, store };
        status.SetAction(parse => Cli.RunAsync(async () =>
        {
            var (state, inForce) = await DeployedPolicies.LoadAsync(parse, data, store);
            Console.WriteLine($"policy version {state.Version}, mesh default {state.MeshDefault}, as of {state.WrittenAt:yyyy-MM-ddTHH:mm:ssZ}");
            foreach (var file in state.Files)
            {
                Console.WriteLine($"{(file.Accepted ? "ok      " : "REFUSED ")} {file.File}: {(file.PoliciesInForce.Count == 0 ? "no policies in force" : string.Join(", ", file.PoliciesInForce))}{(file.Accepted ? "" : " (last good version)")}");
                foreach (var error in file.Errors)
                {
                    Console.WriteLine($"         {error}");
                }
            }
            foreach (var policy in inForce)
            {
                Console.WriteLine($"policy {policy.Id}: {policy.Action.ToString().ToLowerInvariant()} {policy.Mode.ToString().ToLowerInvariant()}, selects {(policy.ServiceAccount is null ? "every workload" : "sa " + policy.ServiceAccount)}, {policy.Rules.Count} rules");
            }
        }));
        return new Command("policy", "AccessPolicy files") { lint, status, PolicyApplyCommand.Apply(), PolicyApplyCommand.Delete(), Suggest(), Unused(), WhatIf() };
    }

    private static Command Suggest()
    {
        var flows = CliOption.Text("--flows", "flow log directory (searched recursively: several sidecars' logs)");
        var flowStore = SharedFlowStore.Option();
        var ns = CliOption.Text("--namespace", "only destinations in this namespace");
        var output = CliOption.Text("--out", "write the YAML to this file instead of standard output");
        var suggest = new Command("suggest", "AccessPolicy YAML allowing exactly the traffic the flow logs recorded") { flows, flowStore, ns, output };
        suggest.SetAction(parse => Cli.RunAsync(async () =>
        {
            var observed = await ObservedFlows.ReadAsync(parse, flows, flowStore);
            var policies = PolicySuggester.Suggest(observed, parse.GetValue(ns));
            var yaml = PolicyYaml.Write(policies, $"suggested by meshctl policy suggest from {observed.Count} recorded requests");
            if (parse.GetValue(output) is { } file)
            {
                File.WriteAllText(file, yaml);
                Console.WriteLine($"wrote {policies.Count} policies with {policies.Sum(static p => p.Rules.Count)} rules to {file}");
            }
            else
            {
                Console.Write(yaml);
            }
        }));
        return suggest;
    }

    private static Command Unused()
    {
        var flows = CliOption.Text("--flows", "flow log directory (searched recursively)");
        var flowStore = SharedFlowStore.Option();
        var data = CliOption.Text("--data", "control-plane data directory: the deployed policies");
        var store = SharedStore.Option();
        var unused = new Command("unused", "rules of the deployed policies that no recorded request exercised") { flows, flowStore, data, store };
        unused.SetAction(parse => Cli.RunAsync(async () =>
        {
            var observed = await ObservedFlows.ReadAsync(parse, flows, flowStore);
            var (set, source) = await PolicySets.DeployedAsync(parse, data, store, null);
            var rules = PolicyReplay.Unused(set.Policies, observed);
            foreach (var (policy, rule) in rules)
            {
                Console.WriteLine($"unused: policy {policy.Id} rule {rule.Name}");
            }
            Console.WriteLine($"{rules.Count} of {set.Policies.Sum(static p => p.Rules.Count)} rules unused by {observed.Count} recorded requests ({source})");
        }));
        return unused;
    }

    private static Command WhatIf()
    {
        var flows = CliOption.Text("--flows", "flow log directory (searched recursively)");
        var flowStore = SharedFlowStore.Option();
        var policies = CliOption.Text("--policies", "the proposed policy file or directory");
        var data = CliOption.Text("--data", "control-plane data directory: take its mesh default");
        var store = SharedStore.Option();
        var defaultPolicy = CliOption.Text("--default-policy", "mesh default for the replay: deny | allow-authenticated | allow");
        var whatIf = new Command("whatif", "replay recorded requests through proposed policies; list every decision that would change") { flows, flowStore, policies, data, store, defaultPolicy };
        whatIf.SetAction(parse => Cli.RunAsync(async () =>
        {
            var observed = await ObservedFlows.ReadAsync(parse, flows, flowStore);
            var meshDefault = parse.GetValue(defaultPolicy);
            if (meshDefault is null && DeployedPolicies.Named(parse, data, store))
            {
                meshDefault = (await DeployedPolicies.LoadAsync(parse, data, store)).Document.MeshDefault;
            }
            var (set, _) = PolicySets.Proposed(CliOption.Required(parse, policies), meshDefault);
            var changes = PolicyReplay.Changes(set, observed);
            foreach (var edge in changes
                .GroupBy(static c => (c.Request.SourceId, c.Request.DestId, From: c.Request.Decision, To: c.Proposed.Verdict))
                .OrderBy(static g => g.Key.SourceId, StringComparer.Ordinal))
            {
                var (from, to) = (edge.Key.From == Verdict.Allow ? "allowed" : "denied", edge.Key.To == Verdict.Allow ? "allowed" : "denied");
                Console.WriteLine($"{edge.Key.SourceId} -> {edge.Key.DestId}: {edge.Count()} requests {from} -> {to}");
                foreach (var (request, proposed) in edge.Take(5))
                {
                    Console.WriteLine($"    {request.Method} {request.Path} port {request.Port}: now {proposed.Describe()}");
                }
            }
            Console.WriteLine($"{changes.Count} of {observed.Count} recorded requests would be decided differently");
        }));
        return whatIf;
    }
}

/// <summary>Lint found mistakes (already printed): exit 1.</summary>
internal sealed class PolicyLintFailedException : Exception;
