using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.Contracts.DataDir;
using MeshGuard.Policy.Parsing;

namespace MeshGuard.Ctl.Commands;

/// <summary><c>meshctl policy lint FILE|DIR</c> and <c>meshctl policy status --data DIR</c>.</summary>
internal static class PolicyCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("FILE|DIR") { Description = "a policy file, or a directory of them (recursively)" };
        var lint = new Command("lint", "check AccessPolicy files; print file:line:column: reason for every mistake") { path };
        lint.SetAction(parse => Cli.Run(() =>
        {
            var results = PolicyDirectory.Load(parse.GetValue(path)!);
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
            }
            Console.WriteLine($"{results.Count} files, {policies} policies, {errors} errors");
            if (errors > 0)
            {
                throw new PolicyLintFailedException();
            }
        }));

        var data = CliOption.Text("--data", "control-plane data directory");
        var status = new Command("status", "the policies the control plane has in force, and refused files") { data };
        status.SetAction(parse => Cli.Run(() =>
        {
            var directory = new DataDirectory(CliOption.Required(parse, data));
            directory.RequireExists();
            var (state, inForce) = PolicyState.Read(directory);
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
        return new Command("policy", "AccessPolicy files") { lint, status };
    }
}

/// <summary>Lint found mistakes (already printed): exit 1.</summary>
internal sealed class PolicyLintFailedException : Exception;
