using MeshGuard.Policy.Model;

namespace MeshGuard.Policy.Engine;

/// <summary>
/// The rules of one kind (say, enforce-mode deny) for one workload, indexed by caller: the rules naming
/// the caller's exact identity and those naming its namespace. A decision looks at those two short lists
/// only, in rule order, however many rules the set holds.
/// </summary>
internal sealed class RuleIndex
{
    private static readonly CompiledRule[] None = [];

    private readonly Dictionary<string, CompiledRule[]> _byIdentity;
    private readonly Dictionary<string, CompiledRule[]> _byNamespace;

    public RuleIndex(IEnumerable<CompiledRule> rules, IReadOnlyDictionary<CompiledRule, PolicyRule> sources)
    {
        var byIdentity = new Dictionary<string, List<CompiledRule>>(StringComparer.Ordinal);
        var byNamespace = new Dictionary<string, List<CompiledRule>>(StringComparer.Ordinal);
        foreach (var rule in rules.OrderBy(static r => r.Order))
        {
            Count++;
            foreach (var source in sources[rule].From)
            {
                var (map, key) = source.Identity is not null ? (byIdentity, source.Identity) : (byNamespace, source.Namespace!);
                if (!map.TryGetValue(key, out var list))
                {
                    list = [];
                    map[key] = list;
                }
                // A rule naming the same caller twice is listed once.
                if (list.Count == 0 || !ReferenceEquals(list[^1], rule))
                {
                    list.Add(rule);
                }
            }
        }
        _byIdentity = byIdentity.ToDictionary(static p => p.Key, static p => p.Value.ToArray(), StringComparer.Ordinal);
        _byNamespace = byNamespace.ToDictionary(static p => p.Key, static p => p.Value.ToArray(), StringComparer.Ordinal);
    }

    public int Count { get; }

    /// <summary>The first rule (in rule order) that matches, or null.</summary>
    public CompiledRule? FirstMatch<THeaders>(Caller caller, int port, string method, ReadOnlySpan<char> path, ref THeaders headers, bool connection)
        where THeaders : IRequestHeaders
    {
        if (Count == 0)
        {
            return null;
        }
        var byId = _byIdentity.TryGetValue(caller.Id, out var a) ? a : None;
        var byNs = caller.Namespace is not null && _byNamespace.TryGetValue(caller.Namespace, out var b) ? b : None;
        // Merge the two ordered lists so that the earliest matching rule decides.
        int i = 0, j = 0;
        while (i < byId.Length || j < byNs.Length)
        {
            CompiledRule next;
            if (j >= byNs.Length || (i < byId.Length && byId[i].Order <= byNs[j].Order))
            {
                next = byId[i++];
                if (j < byNs.Length && ReferenceEquals(byNs[j], next))
                {
                    j++;
                }
            }
            else
            {
                next = byNs[j++];
            }
            if (next.Matches(port, method, path, ref headers, connection))
            {
                return next;
            }
        }
        return null;
    }
}
