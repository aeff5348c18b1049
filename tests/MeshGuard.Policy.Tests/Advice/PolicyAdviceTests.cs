using MeshGuard.Policy.Advice;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Parsing;
using MeshGuard.Spiffe;
using static MeshGuard.Policy.Tests.Engine.P;

namespace MeshGuard.Policy.Tests.Advice;

public sealed class PolicyAdviceTests
{
    private const string Frontend = "spiffe://mesh.local/ns/shop/sa/frontend";
    private const string Billing = "spiffe://mesh.local/ns/billing/sa/biller";
    private const string Orders = "spiffe://mesh.local/ns/shop/sa/orders";

    private static ObservedRequest Seen(string source, string method, string path, Verdict decision = Verdict.Allow, AuditVerdict audit = AuditVerdict.None, string? policy = null, string? rule = null) =>
        new(source, Orders, 8080, method, path, decision, audit, policy, rule);

    private static readonly ObservedRequest[] Traffic =
    [
        Seen(Frontend, "GET", "/orders/17"),
        Seen(Frontend, "GET", "/orders/42"),
        Seen(Frontend, "POST", "/orders"),
        Seen(Billing, "GET", "/invoices/9", Verdict.Deny, AuditVerdict.Deny), // denied for real: not observed traffic
        Seen(Billing, "GET", "/health", Verdict.Allow, AuditVerdict.Deny),    // allowed, audit would deny: keep it
    ];

    private static bool Allowed(PolicySet set, string source, string method, string path) =>
        set.For("shop", "orders").Evaluate(Caller.From(SpiffeId.Parse(source)), 8080, method, path, new NoHeaders()).IsAllowed;

    [Fact]
    public void SuggestedPoliciesLintCleanAllowEveryObservedCallAndNothingElse()
    {
        var yaml = PolicyYaml.Write(PolicySuggester.Suggest(Traffic));
        var parsed = PolicyParser.Parse(yaml, "suggested.yaml");
        Assert.True(parsed.IsValid, string.Join("\n", parsed.Errors) + "\n" + yaml);
        var set = new PolicySet(parsed.Policies, MeshDefault.Deny);

        Assert.True(Allowed(set, Frontend, "GET", "/orders/17"));
        Assert.True(Allowed(set, Frontend, "GET", "/orders/99")); // the varying segment generalized
        Assert.True(Allowed(set, Frontend, "POST", "/orders"));
        Assert.True(Allowed(set, Billing, "GET", "/health"));

        Assert.False(Allowed(set, Frontend, "POST", "/orders/17")); // method seen on another path only
        Assert.False(Allowed(set, Frontend, "DELETE", "/orders/17"));
        Assert.False(Allowed(set, Billing, "GET", "/invoices/9"));
        Assert.False(Allowed(set, "spiffe://mesh.local/ns/shop/sa/payments", "GET", "/orders/17"));
    }

    [Fact]
    public void APathIsGeneralizedOnlyWhereItsLastSegmentVaried() =>
        Assert.Equal(["/a", "/orders/*", "/users/7/profile"],
            PolicySuggester.Generalize(["/orders/17", "/orders/42", "/a", "/users/7/profile"]).Select(p => p.Text));

    [Fact]
    public void WhatIfListsExactlyTheRequestsARemovedRuleAllowed()
    {
        var current = new[] { Allow("orders-callers", Rule("frontend", [Id("frontend")]), Rule("billing", [Ns("billing")])) };
        var observed = new[]
        {
            Seen(Frontend, "GET", "/orders/1", policy: "shop/orders-callers", rule: "frontend"),
            Seen(Billing, "GET", "/invoices", policy: "shop/orders-callers", rule: "billing"),
            Seen(Billing, "POST", "/invoices", policy: "shop/orders-callers", rule: "billing"),
            Seen("spiffe://mesh.local/ns/shop/sa/payments", "GET", "/x", Verdict.Deny),
        };
        var proposed = new PolicySet([Allow("orders-callers", Rule("frontend", [Id("frontend")]))], MeshDefault.Deny);
        var changes = PolicyReplay.Changes(proposed, observed);
        Assert.Equal(2, changes.Count);
        Assert.All(changes, c => Assert.Equal(("shop/orders-callers", "billing", Verdict.Deny), (c.Request.Policy, c.Request.Rule, c.Proposed.Verdict)));
        Assert.Empty(PolicyReplay.Changes(new PolicySet(current, MeshDefault.Deny), observed));
    }

    [Fact]
    public void UnusedNamesTheRulesNoRecordedRequestWasDecidedBy()
    {
        var policies = new[] { Allow("orders-callers", Rule("frontend", [Id("frontend")]), Rule("billing", [Ns("billing")]), Rule("audit-only", [Ns("ops")])) };
        var observed = new[]
        {
            Seen(Frontend, "GET", "/orders/1", policy: "shop/orders-callers", rule: "frontend"),
            Seen(Frontend, "GET", "/orders/1", policy: "shop/orders-callers", rule: "frontend") with { AuditPolicy = "shop/orders-callers", AuditRule = "audit-only" },
        };
        Assert.Equal(["billing"], PolicyReplay.Unused(policies, observed).Select(u => u.Rule.Name));
    }
}
