namespace MeshGuard.Policy.Engine;

/// <summary>
/// The decision table of one workload. Evaluation, as DESIGN.md orders it:
/// 1. an enforce-mode deny rule matches: deny;
/// 2. enforce-mode allow policies select the workload: allow only if one of their rules matches;
/// 3. otherwise the mesh default.
/// Audit-mode policies never change the verdict: the same steps with them enforced too give the audit result.
/// </summary>
public sealed class WorkloadAuthorizer
{
    private readonly RuleIndex _deny;
    private readonly RuleIndex _allow;
    private readonly bool _hasAllowPolicy;
    private readonly RuleIndex? _auditDeny;
    private readonly RuleIndex? _auditAllow;
    private readonly bool _auditHasAllowPolicy;
    private readonly MeshDefault _meshDefault;
    private readonly string _meshDefaultText;

    internal WorkloadAuthorizer(
        string ns, string serviceAccount, RuleIndex deny, RuleIndex allow, bool hasAllowPolicy,
        RuleIndex? auditDeny, RuleIndex? auditAllow, bool auditHasAllowPolicy, MeshDefault meshDefault, IReadOnlyList<string> policies)
    {
        Namespace = ns;
        ServiceAccount = serviceAccount;
        _deny = deny;
        _allow = allow;
        _hasAllowPolicy = hasAllowPolicy;
        _auditDeny = auditDeny;
        _auditAllow = auditAllow;
        _auditHasAllowPolicy = auditHasAllowPolicy;
        _meshDefault = meshDefault;
        _meshDefaultText = meshDefault.ToText();
        Policies = policies;
    }

    public string Namespace { get; }

    public string ServiceAccount { get; }

    /// <summary>Ids of the policies (any mode) that select this workload.</summary>
    public IReadOnlyList<string> Policies { get; }

    /// <summary>Decides an HTTP request (the canonical method and path).</summary>
    public Decision Evaluate<THeaders>(Caller caller, int port, string method, ReadOnlySpan<char> path, THeaders headers)
        where THeaders : IRequestHeaders =>
        Evaluate(caller, port, method, path, headers, connection: false);

    /// <summary>
    /// Decides an opaque TCP connection to <paramref name="port"/>: it has no method, path or headers, so a deny rule
    /// that names them denies it and an allow rule that names them does not allow it.
    /// </summary>
    public Decision EvaluateConnection(Caller caller, int port) => Evaluate(caller, port, "", "", new NoHeaders(), connection: true);

    private Decision Evaluate<THeaders>(Caller caller, int port, string method, ReadOnlySpan<char> path, THeaders headers, bool connection)
        where THeaders : IRequestHeaders
    {
        var decision = Decide(_deny, _allow, _hasAllowPolicy, caller, port, method, path, ref headers, connection);
        if (_auditDeny is null)
        {
            return decision;
        }
        var audit = Decide(_auditDeny, _auditAllow!, _auditHasAllowPolicy, caller, port, method, path, ref headers, connection);
        return decision with
        {
            Audit = audit.IsAllowed ? AuditVerdict.Allow : AuditVerdict.Deny,
            AuditPolicy = audit.Policy,
            AuditRule = audit.Rule,
        };
    }

    private Decision Decide<THeaders>(RuleIndex deny, RuleIndex allow, bool hasAllowPolicy, Caller caller, int port, string method, ReadOnlySpan<char> path, ref THeaders headers, bool connection)
        where THeaders : IRequestHeaders
    {
        // 1.
        if (deny.FirstMatch(caller, port, method, path, ref headers, connection) is { } denied)
        {
            return new Decision(Verdict.Deny, DecisionReason.DenyRule, denied.PolicyId, denied.RuleName);
        }
        // 2.
        if (hasAllowPolicy)
        {
            return allow.FirstMatch(caller, port, method, path, ref headers, connection) is { } allowed
                ? new Decision(Verdict.Allow, DecisionReason.AllowRule, allowed.PolicyId, allowed.RuleName)
                : new Decision(Verdict.Deny, DecisionReason.NoAllowRuleMatched, null, null);
        }
        // 3. Every caller that reaches an evaluation has a verified SVID, so allow-authenticated admits it.
        return new Decision(_meshDefault == MeshDefault.Deny ? Verdict.Deny : Verdict.Allow, DecisionReason.MeshDefault, Decision.MeshDefaultPolicy, _meshDefaultText);
    }
}
