using System.CommandLine;
using System.Globalization;
using MeshGuard.CommandLine;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Policy.Parsing;
using MeshGuard.Spiffe;

namespace MeshGuard.Ctl.Commands;

/// <summary>
/// <c>meshctl authz check</c>: "may A call B with GET /x?" answered by the same engine the sidecars run,
/// against what is deployed (<c>--data</c>) or a proposed set of files (<c>--policies</c>).
/// Exit 0 allow, 1 deny, 2 bad input.
/// </summary>
internal static class AuthzCommand
{
    public static Command Create()
    {
        var data = CliOption.Text("--data", "control-plane data directory: check what is deployed");
        var store = SharedStore.Option();
        var policies = CliOption.Text("--policies", "a policy file or directory: check a proposed set (what-if)");
        var defaultPolicy = CliOption.Text("--default-policy", "mesh default: deny | allow-authenticated | allow (default: the deployed one, else deny)");
        var from = CliOption.Text("--from", "the caller's SPIFFE ID");
        var to = CliOption.Text("--to", "the destination workload's SPIFFE ID");
        var port = CliOption.Port("--port", "destination port", 8080);
        var method = CliOption.Text("--method", "HTTP method", "GET");
        var path = CliOption.Text("--path", "request path (no query)", "/");
        var header = new Option<string[]>("--header") { Description = "a request header, name=value (repeatable)", AllowMultipleArgumentsPerToken = false };
        var check = new Command("check", "decide one request with the sidecars' engine") { data, store, policies, defaultPolicy, from, to, port, method, path, header };
        check.SetAction(parse => Cli.RunAsync(async () =>
        {
            var (set, source) = await PolicySets.LoadAsync(parse, data, store, policies, parse.GetValue(defaultPolicy));
            var caller = ParseId(CliOption.Required(parse, from), "--from");
            var destination = ParseId(CliOption.Required(parse, to), "--to");
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var pair in parse.GetValue(header) ?? [])
            {
                var equals = pair.IndexOf('=', StringComparison.Ordinal);
                if (equals <= 0)
                {
                    throw new CliUsageException($"--header '{pair}' must be name=value");
                }
                headers[pair[..equals]] = pair[(equals + 1)..];
            }
            var ns = destination.GetPathValue("ns") ?? throw new CliUsageException("--to must be spiffe://<td>/ns/<namespace>/sa/<service-account>");
            var sa = destination.GetPathValue("sa") ?? throw new CliUsageException("--to must be spiffe://<td>/ns/<namespace>/sa/<service-account>");
            var requestMethod = parse.GetValue(method)!;
            var requestPath = parse.GetValue(path)!;
            var decision = set.For(ns, sa).Evaluate(Caller.From(caller), parse.GetValue(port), requestMethod, requestPath, new DictionaryHeaders(headers));

            Console.WriteLine(decision.IsAllowed ? "ALLOW" : "DENY");
            Console.WriteLine($"  request:  {caller} -> {destination} port {parse.GetValue(port).ToString(CultureInfo.InvariantCulture)} {requestMethod} {requestPath}");
            Console.WriteLine($"  decided:  {decision.Describe()}");
            Console.WriteLine($"  audit:    {(decision.Audit == AuditVerdict.None ? "none (no audit policy selects the workload)" : $"{decision.Audit.ToString().ToUpperInvariant()} ({(decision.AuditPolicy is null ? "default deny" : $"policy {decision.AuditPolicy} rule {decision.AuditRule}")})")}");
            Console.WriteLine($"  policies: {source}");
            if (!decision.IsAllowed)
            {
                throw new DeniedException();
            }
        }));
        return new Command("authz", "authorization questions") { check };
    }

    private static SpiffeId ParseId(string text, string flag) =>
        SpiffeId.TryParse(text, out var id, out var error) ? id : throw new CliUsageException($"{flag} '{text}': {error}");
}

/// <summary>The answer is deny (already printed): exit 1.</summary>
internal sealed class DeniedException : Exception;
