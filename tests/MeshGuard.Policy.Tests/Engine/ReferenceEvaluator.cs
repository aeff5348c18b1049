using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;

namespace MeshGuard.Policy.Tests.Engine;

/// <summary>
/// The rules of DESIGN.md written as plainly as possible, with no indexes or compilation: the yardstick
/// the compiled engine is checked against.
/// </summary>
public static class ReferenceEvaluator
{
    public sealed record Request(string CallerId, string CallerNs, string Ns, string Sa, int Port, string Method, string Path, Dictionary<string, string> Headers);

    public static (Verdict Verdict, string? Policy, string? Rule) Decide(IReadOnlyList<AccessPolicy> policies, MeshDefault meshDefault, Request request, bool includeAudit)
    {
        var considered = policies.Where(p => p.Selects(request.Ns, request.Sa) && (p.Mode == PolicyMode.Enforce || includeAudit)).ToList();
        foreach (var policy in considered.Where(p => p.Action == PolicyAction.Deny))
        {
            foreach (var rule in policy.Rules)
            {
                if (Matches(rule, request))
                {
                    return (Verdict.Deny, policy.Id, rule.Name);
                }
            }
        }
        var allowPolicies = considered.Where(p => p.Action == PolicyAction.Allow).ToList();
        if (allowPolicies.Count > 0)
        {
            foreach (var policy in allowPolicies)
            {
                foreach (var rule in policy.Rules)
                {
                    if (Matches(rule, request))
                    {
                        return (Verdict.Allow, policy.Id, rule.Name);
                    }
                }
            }
            return (Verdict.Deny, null, null);
        }
        return (meshDefault == MeshDefault.Deny ? Verdict.Deny : Verdict.Allow, Decision.MeshDefaultPolicy, meshDefault.ToText());
    }

    private static bool Matches(PolicyRule rule, Request r) =>
        rule.From.Any(s => s.Identity == r.CallerId || s.Namespace == r.CallerNs)
        && (rule.To.Count == 0 || rule.To.Any(d =>
            (d.Ports.Count == 0 || d.Ports.Contains(r.Port))
            && (d.Methods.Count == 0 || d.Methods.Contains(r.Method))
            && (d.Paths.Count == 0 || d.Paths.Any(p => PathMatches(p.Text, r.Path)))))
        && rule.When.All(c => r.Headers.Any(h => string.Equals(h.Key, c.Header, StringComparison.OrdinalIgnoreCase) && c.Values.Contains(h.Value)));

    // Straight from the definition: "*" any; "/a/*" anything strictly below /a/; else exact.
    private static bool PathMatches(string pattern, string path) =>
        pattern == "*"
        || (pattern.EndsWith("/*", StringComparison.Ordinal)
            ? path.StartsWith(pattern[..^1], StringComparison.Ordinal) && path.Length > pattern.Length - 1
            : path == pattern);
}
