namespace MeshGuard.Policy.Engine;

public enum Verdict : byte
{
    Deny,
    Allow,
}

/// <summary>Why the verdict is what it is.</summary>
public enum DecisionReason : byte
{
    /// <summary>An enforce-mode deny rule matched.</summary>
    DenyRule,

    /// <summary>An enforce-mode allow rule matched.</summary>
    AllowRule,

    /// <summary>Allow policies select the workload and none of their rules matched.</summary>
    NoAllowRuleMatched,

    /// <summary>No enforce-mode policy selects the workload: the mesh default decided.</summary>
    MeshDefault,

    /// <summary>The caller's identity is on the control plane's revocation list.</summary>
    Revoked,

    /// <summary>The request broke the mesh's request rules (method, target, path normalization): refused with 400 before any policy.</summary>
    MalformedRequest,

    /// <summary>The sidecar has no config snapshot in force yet (started, control plane not reached, no disk snapshot): every call is denied.</summary>
    NoConfig,
}

/// <summary>What audit-mode policies would have decided; <see cref="None"/> when none selects the workload.</summary>
public enum AuditVerdict : byte
{
    None,
    Deny,
    Allow,
}

/// <summary>
/// An authorization decision: the verdict, why, the deciding policy ("namespace/name") and rule when a
/// rule decided, and the audit result. A value type made of references to compiled strings: deciding
/// allocates nothing.
/// </summary>
public readonly record struct Decision(
    Verdict Verdict,
    DecisionReason Reason,
    string? Policy,
    string? Rule,
    AuditVerdict Audit = AuditVerdict.None,
    string? AuditPolicy = null,
    string? AuditRule = null)
{
    /// <summary>The policy name a mesh-default decision carries; its rule is the default ("deny", "allow", ...).</summary>
    public const string MeshDefaultPolicy = "mesh-default";

    /// <summary>The policy name a revocation carries in flow records and /decisions; its rule is "revoked".</summary>
    public const string RevocationPolicy = "mesh-revocations";

    /// <summary>The policy name a request refused by the mesh's request rules carries; its rule names the rule broken.</summary>
    public const string RequestRulesPolicy = "mesh-request-rules";

    /// <summary>The policy name a call denied for want of any config carries; its rule is "no-config-yet".</summary>
    public const string NoConfigPolicy = "mesh-config";

    /// <summary>The decision for a request that broke <paramref name="rule"/> of the mesh's request rules.</summary>
    public static Decision Malformed(string rule) => new(Verdict.Deny, DecisionReason.MalformedRequest, RequestRulesPolicy, rule);

    /// <summary>The decision for a caller whose identity is revoked, whatever the policies say.</summary>
    public static Decision Revoked { get; } = new(Verdict.Deny, DecisionReason.Revoked, RevocationPolicy, "revoked");

    /// <summary>The decision for any call while no config snapshot is in force (fail closed).</summary>
    public static Decision NoConfig { get; } = new(Verdict.Deny, DecisionReason.NoConfig, NoConfigPolicy, "no-config-yet");

    public bool IsAllowed => Verdict == Verdict.Allow;

    /// <summary>"allow" or "deny", as flow records, /decisions and metrics spell a verdict.</summary>
    public string VerdictText => Text(Verdict);

    /// <summary>"allow", "deny", or null when no audit policy selects the workload.</summary>
    public string? AuditText => Audit switch { AuditVerdict.Allow => "allow", AuditVerdict.Deny => "deny", _ => null };

    public static string Text(Verdict verdict) => verdict == Verdict.Allow ? "allow" : "deny";

    public override string ToString() =>
        $"{(IsAllowed ? "ALLOW" : "DENY")} {Describe()}" + (Audit == AuditVerdict.None ? "" : $" audit={Audit.ToString().ToUpperInvariant()}");

    /// <summary>What decided, in words: "policy shop/orders-callers rule rules[0]", or the default that applied.</summary>
    public string Describe() => Reason switch
    {
        DecisionReason.DenyRule or DecisionReason.AllowRule => $"policy {Policy} rule {Rule}",
        DecisionReason.NoAllowRuleMatched => "no rule of the allow policies selecting this workload matched (default deny)",
        DecisionReason.Revoked => "the caller's identity is revoked",
        DecisionReason.MalformedRequest => $"the mesh's request rules ({Rule})",
        DecisionReason.NoConfig => "no config snapshot in force yet (fail closed)",
        _ => $"mesh default ({Rule})",
    };
}
