namespace MeshGuard.Policy.Model;

/// <summary>
/// What an app team declared: which callers may (or may not) reach the selected workloads of its namespace.
/// The immutable form of one YAML document, as validated by the parser.
/// </summary>
public sealed record AccessPolicy
{
    public required string Name { get; init; }

    public required string Namespace { get; init; }

    /// <summary>The destination workloads' service account; null selects every workload of the namespace.</summary>
    public string? ServiceAccount { get; init; }

    public PolicyAction Action { get; init; }

    public PolicyMode Mode { get; init; }

    public IReadOnlyList<PolicyRule> Rules { get; init; } = [];

    /// <summary>Where the policy was written (file and position of its document), when it came from a file.</summary>
    public PolicyLocation? Location { get; init; }

    /// <summary>"namespace/name": how decisions, logs and flow records name the policy.</summary>
    public string Id => Namespace + "/" + Name;

    public bool Selects(string ns, string serviceAccount) =>
        ns == Namespace && (ServiceAccount is null || ServiceAccount == serviceAccount);
}

public enum PolicyAction
{
    Allow,
    Deny,
}

public enum PolicyMode
{
    Enforce,
    Audit,
}

/// <summary>A rule matches when a <c>from</c> entry matches the caller, a <c>to</c> entry (if any) the request, and every <c>when</c> condition holds.</summary>
public sealed record PolicyRule
{
    /// <summary>The rule's name as written, or "rules[i]".</summary>
    public required string Name { get; init; }

    public IReadOnlyList<PolicySource> From { get; init; } = [];

    public IReadOnlyList<PolicyDestination> To { get; init; } = [];

    public IReadOnlyList<HeaderCondition> When { get; init; } = [];
}

/// <summary>One caller: an exact SPIFFE ID, or any workload of a namespace (same trust domain).</summary>
public sealed record PolicySource
{
    public string? Identity { get; init; }

    public string? Namespace { get; init; }
}

/// <summary>What is called: empty lists mean any.</summary>
public sealed record PolicyDestination
{
    public IReadOnlyList<int> Ports { get; init; } = [];

    public IReadOnlyList<string> Methods { get; init; } = [];

    public IReadOnlyList<PathPattern> Paths { get; init; } = [];
}

/// <summary>The request header <see cref="Header"/> has one of <see cref="Values"/>.</summary>
public sealed record HeaderCondition
{
    public required string Header { get; init; }

    public IReadOnlyList<string> Values { get; init; } = [];
}

/// <summary>Where a policy document starts.</summary>
public sealed record PolicyLocation(string File, long Line, long Column);
