using MeshGuard.Policy.Model;

namespace MeshGuard.Policy.Tests.Engine;

/// <summary>Terse policies for tables of cases.</summary>
internal static class P
{
    public static AccessPolicy Policy(string name, PolicyAction action, params PolicyRule[] rules) =>
        new() { Name = name, Namespace = "shop", ServiceAccount = "orders", Action = action, Mode = PolicyMode.Enforce, Rules = rules };

    public static AccessPolicy Allow(string name, params PolicyRule[] rules) => Policy(name, PolicyAction.Allow, rules);

    public static AccessPolicy Deny(string name, params PolicyRule[] rules) => Policy(name, PolicyAction.Deny, rules);

    public static AccessPolicy Audit(this AccessPolicy policy) => policy with { Mode = PolicyMode.Audit };

    public static PolicyRule Rule(string name, PolicySource[] from, PolicyDestination[]? to = null, HeaderCondition[]? when = null) =>
        new() { Name = name, From = from, To = to ?? [], When = when ?? [] };

    public static PolicySource Id(string sa, string ns = "shop") => new() { Identity = $"spiffe://mesh.local/ns/{ns}/sa/{sa}" };

    public static PolicySource Ns(string ns) => new() { Namespace = ns };

    public static PolicyDestination To(int[]? ports = null, string[]? methods = null, string[]? paths = null) => new()
    {
        Ports = ports ?? [],
        Methods = methods ?? [],
        Paths = (paths ?? []).Select(p => PathPattern.TryParse(p, out var pattern, out var error) ? pattern! : throw new ArgumentException(error)).ToList(),
    };

    public static HeaderCondition Header(string name, params string[] values) => new() { Header = name, Values = values };
}
