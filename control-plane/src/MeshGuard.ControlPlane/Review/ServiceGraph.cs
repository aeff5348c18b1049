using MeshGuard.ControlPlane.FlowCollection;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Review;

/// <summary>
/// Who called whom: edges from caller to callee identity by decision, counted from the inbound records of the
/// collected logs (the destination's sidecar decides, so its record is the one that says what happened; see
/// <see cref="ICollectedFlows.CallsAsync"/>).
/// Nodes are identities grouped by namespace; a caller without a mesh identity is one node of its own.
/// </summary>
internal sealed record ServiceGraph(IReadOnlyList<ServiceGraph.Group> Groups, IReadOnlyList<ServiceGraph.Edge> Edges)
{
    public const string Unauthenticated = "(no mesh identity)";

    public sealed record Edge(string Source, string Destination, string Decision, long Count);

    public sealed record Group(string Namespace, IReadOnlyList<string> Identities);

    /// <param name="calls">Calls by caller, callee and decision, as the callees recorded them.</param>
    /// <param name="known">Identities to draw even without traffic (every workload the control plane knows).</param>
    public static ServiceGraph From(IEnumerable<CallCount> calls, IEnumerable<string> known)
    {
        var counts = new Dictionary<(string, string, string), long>();
        var nodes = new HashSet<string>(known, StringComparer.Ordinal);
        foreach (var call in calls)
        {
            var key = (call.Source.Length == 0 ? Unauthenticated : call.Source, call.Destination, call.Decision);
            counts[key] = counts.GetValueOrDefault(key) + call.Calls;
            nodes.Add(key.Item1);
            nodes.Add(call.Destination);
        }
        var edges = counts.Select(static c => new Edge(c.Key.Item1, c.Key.Item2, c.Key.Item3, c.Value))
            .OrderBy(static e => e.Source, StringComparer.Ordinal).ThenBy(static e => e.Destination, StringComparer.Ordinal)
            .ThenBy(static e => e.Decision, StringComparer.Ordinal).ToList();
        var groups = nodes.GroupBy(NamespaceOf, StringComparer.Ordinal).OrderBy(static g => g.Key, StringComparer.Ordinal)
            .Select(static g => new Group(g.Key, [.. g.Order(StringComparer.Ordinal)])).ToList();
        return new ServiceGraph(groups, edges);
    }

    public static string NamespaceOf(string identity) =>
        SpiffeId.TryParse(identity, out var id, out _) ? id.GetPathValue("ns") ?? id.TrustDomain : "outside the mesh";

    /// <summary>The short name drawn in a node: the service account, else the whole identity.</summary>
    public static string ShortName(string identity) =>
        SpiffeId.TryParse(identity, out var id, out _) ? id.GetPathValue("sa") ?? identity : identity;
}
