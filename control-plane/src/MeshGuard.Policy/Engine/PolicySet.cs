using System.Collections.Concurrent;
using MeshGuard.Policy.Model;

namespace MeshGuard.Policy.Engine;

/// <summary>
/// A validated set of policies and the mesh default, compiled on demand into one decision table per
/// workload (namespace, service account). Immutable: a change builds a new set.
/// </summary>
public sealed class PolicySet
{
    private readonly ConcurrentDictionary<(string, string), WorkloadAuthorizer> _tables = new();
    private readonly Dictionary<CompiledRule, PolicyRule> _sources = [];
    private readonly List<(AccessPolicy Policy, CompiledRule[] Rules)> _compiled = [];

    public PolicySet(IReadOnlyList<AccessPolicy> policies, MeshDefault meshDefault)
    {
        Policies = policies;
        MeshDefault = meshDefault;
        var order = 0;
        foreach (var policy in policies)
        {
            var rules = new CompiledRule[policy.Rules.Count];
            for (var i = 0; i < rules.Length; i++)
            {
                rules[i] = new CompiledRule(order++, policy, policy.Rules[i]);
                _sources[rules[i]] = policy.Rules[i];
            }
            _compiled.Add((policy, rules));
        }
    }

    public IReadOnlyList<AccessPolicy> Policies { get; }

    public MeshDefault MeshDefault { get; }

    /// <summary>The decision table of a workload; built once, then shared.</summary>
    public WorkloadAuthorizer For(string ns, string serviceAccount) =>
        _tables.GetOrAdd((ns, serviceAccount), static (key, set) => set.Compile(key.Item1, key.Item2), this);

    /// <summary>The policies that select a workload, in any mode: what its sidecar needs to be sent.</summary>
    public IReadOnlyList<AccessPolicy> Selecting(string ns, string serviceAccount) =>
        Policies.Where(p => p.Selects(ns, serviceAccount)).ToList();

    private WorkloadAuthorizer Compile(string ns, string serviceAccount)
    {
        var deny = new List<CompiledRule>();
        var allow = new List<CompiledRule>();
        var auditDeny = new List<CompiledRule>();
        var auditAllow = new List<CompiledRule>();
        var hasAllowPolicy = false;
        var hasAuditAllowPolicy = false;
        var hasAudit = false;
        var selecting = new List<string>();
        foreach (var (policy, rules) in _compiled)
        {
            if (!policy.Selects(ns, serviceAccount))
            {
                continue;
            }
            selecting.Add(policy.Id);
            var isAllow = policy.Action == PolicyAction.Allow;
            if (policy.Mode == PolicyMode.Enforce)
            {
                (isAllow ? allow : deny).AddRange(rules);
                hasAllowPolicy |= isAllow;
            }
            else
            {
                hasAudit = true;
                hasAuditAllowPolicy |= isAllow;
            }
            // The audit evaluation sees every policy, enforce and audit alike.
            (isAllow ? auditAllow : auditDeny).AddRange(rules);
        }
        return new WorkloadAuthorizer(
            ns,
            serviceAccount,
            new RuleIndex(deny, _sources),
            new RuleIndex(allow, _sources),
            hasAllowPolicy,
            hasAudit ? new RuleIndex(auditDeny, _sources) : null,
            hasAudit ? new RuleIndex(auditAllow, _sources) : null,
            hasAllowPolicy || hasAuditAllowPolicy,
            MeshDefault,
            selecting);
    }
}
