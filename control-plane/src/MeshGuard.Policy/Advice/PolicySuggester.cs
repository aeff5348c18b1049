using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Spiffe;

namespace MeshGuard.Policy.Advice;

/// <summary>
/// Proposes the least-privilege policies that cover exactly the traffic seen: per destination workload one
/// allow policy; per caller one rule; per port and method one <c>to</c> entry listing the paths, with a
/// path generalized to <c>parent/*</c> where its last segment was seen to vary.
/// Observed traffic = what was allowed, including what audit-mode policies would deny (it happened, so the
/// suggestion keeps it); what was denied for real never reached the app and is left out.
/// </summary>
public static class PolicySuggester
{
    public static List<AccessPolicy> Suggest(IEnumerable<ObservedRequest> observed, string? onlyNamespace = null)
    {
        var byDestination = new SortedDictionary<string, List<ObservedRequest>>(StringComparer.Ordinal);
        foreach (var request in observed)
        {
            if (request.Decision != Verdict.Allow)
            {
                continue;
            }
            if (!SpiffeId.TryParse(request.DestId, out var dest, out _) || dest.GetPathValue("ns") is not { } ns || dest.GetPathValue("sa") is null)
            {
                continue;
            }
            if (onlyNamespace is not null && ns != onlyNamespace)
            {
                continue;
            }
            if (!byDestination.TryGetValue(request.DestId, out var list))
            {
                list = [];
                byDestination[request.DestId] = list;
            }
            list.Add(request);
        }

        var policies = new List<AccessPolicy>();
        foreach (var (destId, requests) in byDestination)
        {
            var dest = SpiffeId.Parse(destId);
            var rules = new List<PolicyRule>();
            foreach (var bySource in requests.GroupBy(static r => r.SourceId).OrderBy(static g => g.Key, StringComparer.Ordinal))
            {
                var to = new List<PolicyDestination>();
                foreach (var byPortMethod in bySource.GroupBy(static r => (r.Port, r.Method)).OrderBy(static g => g.Key.Port).ThenBy(static g => g.Key.Method, StringComparer.Ordinal))
                {
                    to.Add(new PolicyDestination
                    {
                        Ports = byPortMethod.Key.Port > 0 ? [byPortMethod.Key.Port] : [],
                        Methods = byPortMethod.Key.Method.Length > 0 ? [byPortMethod.Key.Method] : [],
                        Paths = Generalize(byPortMethod.Select(static r => r.Path)),
                    });
                }
                rules.Add(new PolicyRule { Name = RuleName(bySource.Key), From = [new PolicySource { Identity = bySource.Key }], To = to });
            }
            policies.Add(new AccessPolicy
            {
                Name = $"{dest.GetPathValue("sa")}-observed-callers",
                Namespace = dest.GetPathValue("ns")!,
                ServiceAccount = dest.GetPathValue("sa"),
                Action = PolicyAction.Allow,
                Mode = PolicyMode.Enforce,
                Rules = rules,
            });
        }
        return policies;
    }

    /// <summary>Exact paths, except that two or more siblings become <c>parent/*</c>.</summary>
    public static List<PathPattern> Generalize(IEnumerable<string> paths)
    {
        var distinct = paths.Where(static p => p.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        var siblings = distinct
            .Where(static p => p.LastIndexOf('/') > 0)
            .GroupBy(static p => p[..(p.LastIndexOf('/') + 1)], StringComparer.Ordinal)
            .Where(static g => g.Count() >= 2)
            .Select(static g => g.Key)
            .ToHashSet(StringComparer.Ordinal);
        var patterns = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var path in distinct)
        {
            var slash = path.LastIndexOf('/');
            patterns.Add(slash > 0 && siblings.Contains(path[..(slash + 1)]) ? path[..(slash + 1)] + "*" : path);
        }
        var result = new List<PathPattern>();
        foreach (var text in patterns)
        {
            if (PathPattern.TryParse(text, out var pattern, out _))
            {
                result.Add(pattern!);
            }
        }
        return result;
    }

    private static string RuleName(string sourceId) =>
        SpiffeId.TryParse(sourceId, out var id, out _) && id.GetPathValue("ns") is { } ns && id.GetPathValue("sa") is { } sa
            ? $"from-{sa}-{ns}"
            : "from-" + sourceId.GetHashCode(StringComparison.Ordinal).ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
}
