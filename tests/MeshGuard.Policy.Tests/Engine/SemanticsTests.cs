using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Spiffe;
using static MeshGuard.Policy.Tests.Engine.P;

namespace MeshGuard.Policy.Tests.Engine;

/// <summary>The evaluation order of DESIGN.md, case by case.</summary>
public sealed class SemanticsTests
{
    private static readonly Caller Frontend = Caller.From(SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/frontend"));
    private static readonly Caller Biller = Caller.From(SpiffeId.Parse("spiffe://mesh.local/ns/billing/sa/biller"));

    private static Decision Decide(AccessPolicy[] policies, Caller caller, string method = "GET", string path = "/orders/1", int port = 8080,
        MeshDefault meshDefault = MeshDefault.Deny, Dictionary<string, string>? headers = null) =>
        new PolicySet(policies, meshDefault).For("shop", "orders").Evaluate(caller, port, method, path, new DictionaryHeaders(headers ?? []));

    [Fact]
    public void ADenyRuleBeatsAMatchingAllowRule()
    {
        var decision = Decide([Allow("a", Rule("r", [Id("frontend")])), Deny("d", Rule("no-frontend", [Id("frontend")]))], Frontend);
        Assert.Equal(new Decision(Verdict.Deny, DecisionReason.DenyRule, "shop/d", "no-frontend"), decision);
    }

    [Fact]
    public void AnAllowPolicyMakesTheWorkloadDefaultDenyForEveryoneElse()
    {
        var policies = new[] { Allow("a", Rule("r", [Id("frontend")])) };
        Assert.Equal(Verdict.Allow, Decide(policies, Frontend).Verdict);
        var other = Decide(policies, Biller, meshDefault: MeshDefault.Allow);
        Assert.Equal(new Decision(Verdict.Deny, DecisionReason.NoAllowRuleMatched, null, null), other);
    }

    [Theory]
    [InlineData(MeshDefault.Deny, Verdict.Deny)]
    [InlineData(MeshDefault.AllowAuthenticated, Verdict.Allow)]
    [InlineData(MeshDefault.Allow, Verdict.Allow)]
    public void WithoutPoliciesTheMeshDefaultDecides(MeshDefault meshDefault, Verdict expected)
    {
        var decision = Decide([], Frontend, meshDefault: meshDefault);
        Assert.Equal(expected, decision.Verdict);
        Assert.Equal(DecisionReason.MeshDefault, decision.Reason);
        Assert.Equal(Decision.MeshDefaultPolicy, decision.Policy);
        Assert.Equal(meshDefault.ToText(), decision.Rule);
    }

    [Fact]
    public void ADenyPolicyAloneLeavesOthersToTheMeshDefault()
    {
        var policies = new[] { Deny("d", Rule("r", [Id("frontend")])) };
        Assert.Equal(Verdict.Deny, Decide(policies, Frontend, meshDefault: MeshDefault.Allow).Verdict);
        Assert.Equal(DecisionReason.MeshDefault, Decide(policies, Biller, meshDefault: MeshDefault.Allow).Reason);
        Assert.Equal(Verdict.Allow, Decide(policies, Biller, meshDefault: MeshDefault.Allow).Verdict);
    }

    [Fact]
    public void ANamespaceSourceAdmitsEveryWorkloadOfThatNamespaceOnly()
    {
        var policies = new[] { Allow("a", Rule("billing", [Ns("billing")])) };
        Assert.Equal(Verdict.Allow, Decide(policies, Biller).Verdict);
        Assert.Equal(Verdict.Deny, Decide(policies, Frontend).Verdict);
    }

    [Theory]
    [InlineData("/orders", "/orders", true)]
    [InlineData("/orders", "/orders/1", false)]
    [InlineData("/orders/*", "/orders/1", true)]
    [InlineData("/orders/*", "/orders/1/items", true)]
    [InlineData("/orders/*", "/orders", false)]
    [InlineData("/orders/*", "/orders/", false)]
    [InlineData("/orders/*", "/ordersx/1", false)]
    [InlineData("*", "/anything", true)]
    public void PathPatternsAreExactPrefixOrAny(string pattern, string path, bool allowed)
    {
        var policies = new[] { Allow("a", Rule("r", [Id("frontend")], [To(paths: [pattern])])) };
        Assert.Equal(allowed, Decide(policies, Frontend, path: path).IsAllowed);
    }

    [Theory]
    [InlineData("GET", 8080, true)]
    [InlineData("POST", 8080, true)]
    [InlineData("DELETE", 8080, false)]
    [InlineData("GET", 9090, false)]
    public void MethodsAndPortsMustBothMatchOneToEntry(string method, int port, bool allowed)
    {
        var policies = new[] { Allow("a", Rule("r", [Id("frontend")], [To(ports: [8080], methods: ["GET", "POST"])])) };
        Assert.Equal(allowed, Decide(policies, Frontend, method: method, port: port).IsAllowed);
    }

    [Fact]
    public void AnyToEntryMayMatch()
    {
        var policies = new[] { Allow("a", Rule("r", [Id("frontend")], [To(methods: ["GET"]), To(methods: ["DELETE"], paths: ["/orders/1"])])) };
        Assert.True(Decide(policies, Frontend, method: "DELETE").IsAllowed);
        Assert.False(Decide(policies, Frontend, method: "DELETE", path: "/orders/2").IsAllowed);
    }

    [Fact]
    public void EveryHeaderConditionMustHold()
    {
        var policies = new[] { Allow("a", Rule("r", [Id("frontend")], when: [Header("x-tenant", "acme", "globex"), Header("x-env", "prod")])) };
        Assert.True(Decide(policies, Frontend, headers: new() { ["X-Tenant"] = "globex", ["x-env"] = "prod" }).IsAllowed);
        Assert.False(Decide(policies, Frontend, headers: new() { ["x-tenant"] = "acme" }).IsAllowed);
        Assert.False(Decide(policies, Frontend, headers: new() { ["x-tenant"] = "initech", ["x-env"] = "prod" }).IsAllowed);
        Assert.False(Decide(policies, Frontend).IsAllowed);
    }

    [Fact]
    public void AuditPoliciesNeverChangeTheOutcomeButReportWhatTheyWouldDo()
    {
        var enforce = Allow("a", Rule("frontend", [Id("frontend")]));
        var auditDeny = Deny("lockdown", Rule("everyone", [Ns("shop"), Ns("billing")])).Audit();
        var decision = Decide([enforce, auditDeny], Frontend);
        Assert.Equal(Verdict.Allow, decision.Verdict);
        Assert.Equal("shop/a", decision.Policy);
        Assert.Equal(AuditVerdict.Deny, decision.Audit);
        Assert.Equal("shop/lockdown", decision.AuditPolicy);
        Assert.Equal("everyone", decision.AuditRule);
    }

    [Fact]
    public void AnAuditAllowPolicyReportsDefaultDenyWithoutEnforcingIt()
    {
        var decision = Decide([Allow("future", Rule("billing-only", [Ns("billing")])).Audit()], Frontend, meshDefault: MeshDefault.Allow);
        Assert.Equal(Verdict.Allow, decision.Verdict);
        Assert.Equal(DecisionReason.MeshDefault, decision.Reason);
        Assert.Equal(AuditVerdict.Deny, decision.Audit);
    }

    [Fact]
    public void WithoutAuditPoliciesThereIsNoAuditResult() =>
        Assert.Equal(AuditVerdict.None, Decide([Allow("a", Rule("r", [Id("frontend")]))], Frontend).Audit);

    [Fact]
    public void PoliciesOfOtherWorkloadsOrNamespacesDoNotApply()
    {
        var otherWorkload = Allow("a", Rule("r", [Id("frontend")])) with { ServiceAccount = "payments" };
        var otherNamespace = Deny("d", Rule("r", [Id("frontend")])) with { Namespace = "billing", ServiceAccount = null };
        var decision = Decide([otherWorkload, otherNamespace], Frontend, meshDefault: MeshDefault.Allow);
        Assert.Equal(DecisionReason.MeshDefault, decision.Reason);
    }

    [Fact]
    public void ASelectorWithoutServiceAccountSelectsTheWholeNamespace()
    {
        var decision = Decide([Deny("all", Rule("r", [Id("frontend")])) with { ServiceAccount = null }], Frontend, meshDefault: MeshDefault.Allow);
        Assert.Equal(DecisionReason.DenyRule, decision.Reason);
    }

    [Fact]
    public void TheFirstMatchingRuleInOrderDecides()
    {
        var policies = new[]
        {
            Allow("first", Rule("by-namespace", [Ns("shop")]), Rule("by-id", [Id("frontend")])),
            Allow("second", Rule("by-id", [Id("frontend")])),
        };
        var decision = Decide(policies, Frontend);
        Assert.Equal(("shop/first", "by-namespace"), (decision.Policy, decision.Rule));
    }

    [Fact]
    public void ADecisionAllocatesNothing()
    {
        var authorizer = new PolicySet([Allow("a", Rule("r", [Id("frontend"), Ns("billing")], [To([8080], ["GET"], ["/orders/*"])]))], MeshDefault.Deny).For("shop", "orders");
        var headers = new NoHeaders();
        authorizer.Evaluate(Frontend, 8080, "GET", "/orders/1", headers);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            authorizer.Evaluate(Frontend, 8080, "GET", "/orders/1", headers);
            authorizer.Evaluate(Biller, 8080, "POST", "/orders/1", headers);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
