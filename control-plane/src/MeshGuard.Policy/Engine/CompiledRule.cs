using MeshGuard.Policy.Model;

namespace MeshGuard.Policy.Engine;

/// <summary>A rule in the form a decision reads it: arrays, no LINQ, null for "any".</summary>
internal sealed class CompiledRule
{
    public CompiledRule(int order, AccessPolicy policy, PolicyRule rule)
    {
        Order = order;
        IsDeny = policy.Action == PolicyAction.Deny;
        PolicyId = policy.Id;
        RuleName = rule.Name;
        Destinations = rule.To.Count == 0 ? null : rule.To.Select(static d => new CompiledDestination(d)).ToArray();
        Conditions = rule.When.Count == 0 ? null : rule.When.Select(static c => (c.Header, c.Values.ToArray())).ToArray();
    }

    /// <summary>Position among all rules of the set: the first matching rule (lowest order) decides.</summary>
    public int Order { get; }

    public string PolicyId { get; }

    /// <summary>A deny rule: on an opaque connection its HTTP-only conditions count as met (fail closed).</summary>
    private bool IsDeny { get; }

    public string RuleName { get; }

    private CompiledDestination[]? Destinations { get; }

    private (string Header, string[] Values)[]? Conditions { get; }

    /// <summary>
    /// Whether the rule matches a request, or, where <paramref name="connection"/> is set, an opaque TCP connection:
    /// it has no method, path or headers, so a condition on them is met for a deny rule and unmet for an allow
    /// rule (Istio's TCP semantics: such a rule fails closed for deny and matches nothing for allow).
    /// </summary>
    public bool Matches<THeaders>(int port, string method, ReadOnlySpan<char> path, ref THeaders headers, bool connection = false)
        where THeaders : IRequestHeaders
    {
        if (Destinations is { } destinations)
        {
            var any = false;
            foreach (var destination in destinations)
            {
                if (connection ? destination.MatchesConnection(port, IsDeny) : destination.Matches(port, method, path))
                {
                    any = true;
                    break;
                }
            }
            if (!any)
            {
                return false;
            }
        }
        if (Conditions is { } conditions)
        {
            if (connection)
            {
                return IsDeny;
            }
            foreach (var (header, values) in conditions)
            {
                if (!headers.HasValueIn(header, values))
                {
                    return false;
                }
            }
        }
        return true;
    }

    private sealed class CompiledDestination(PolicyDestination destination)
    {
        private readonly int[]? _ports = destination.Ports.Count == 0 ? null : [.. destination.Ports];
        private readonly string[]? _methods = destination.Methods.Count == 0 ? null : [.. destination.Methods];
        private readonly PathPattern[]? _paths = destination.Paths.Count == 0 ? null : [.. destination.Paths];

        public bool MatchesConnection(int port, bool deny) =>
            (_ports is null || Array.IndexOf(_ports, port) >= 0) && (deny || (_methods is null && _paths is null));

        public bool Matches(int port, string method, ReadOnlySpan<char> path)
        {
            if (_ports is not null && Array.IndexOf(_ports, port) < 0)
            {
                return false;
            }
            if (_methods is not null && !Contains(_methods, method))
            {
                return false;
            }
            if (_paths is not null)
            {
                foreach (var pattern in _paths)
                {
                    if (pattern.Matches(path))
                    {
                        return true;
                    }
                }
                return false;
            }
            return true;
        }

        private static bool Contains(string[] methods, string method)
        {
            foreach (var m in methods)
            {
                if (string.Equals(m, method, StringComparison.Ordinal))
                {
                    return true;
                }
            }
            return false;
        }
    }
}
