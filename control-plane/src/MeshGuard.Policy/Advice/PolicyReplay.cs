using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Spiffe;

namespace MeshGuard.Policy.Advice;

/// <summary>Recorded traffic put through a policy set: what would change, and which rules nothing used.</summary>
public static class PolicyReplay
{
    /// <summary>Every recorded request whose decision the <paramref name="proposed"/> set would change.</summary>
    public static List<(ObservedRequest Request, Decision Proposed)> Changes(PolicySet proposed, IEnumerable<ObservedRequest> observed)
    {
        var changes = new List<(ObservedRequest, Decision)>();
        foreach (var request in observed)
        {
            if (!SpiffeId.TryParse(request.SourceId, out var source, out _) || !SpiffeId.TryParse(request.DestId, out var dest, out _)
                || dest.GetPathValue("ns") is not { } ns || dest.GetPathValue("sa") is not { } sa)
            {
                continue;
            }
            var decision = proposed.For(ns, sa).Evaluate(Caller.From(source), request.Port, request.Method, request.Path, new NoHeaders());
            if (decision.Verdict != request.Decision)
            {
                changes.Add((request, decision));
            }
        }
        return changes;
    }

    /// <summary>Rules of <paramref name="policies"/> that no recorded request was decided by.</summary>
    public static List<(AccessPolicy Policy, PolicyRule Rule)> Unused(IEnumerable<AccessPolicy> policies, IEnumerable<ObservedRequest> observed)
    {
        var used = new HashSet<(string?, string?)>();
        foreach (var request in observed)
        {
            used.Add((request.Policy, request.Rule));
            used.Add((request.AuditPolicy, request.AuditRule));
        }
        var unused = new List<(AccessPolicy, PolicyRule)>();
        foreach (var policy in policies)
        {
            foreach (var rule in policy.Rules)
            {
                if (!used.Contains((policy.Id, rule.Name)))
                {
                    unused.Add((policy, rule));
                }
            }
        }
        return unused;
    }
}
