using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Spiffe;
using static MeshGuard.Policy.Tests.Engine.P;

namespace MeshGuard.Policy.Tests.Engine;

/// <summary>An opaque TCP connection has no method, path or headers: rules that name them fail closed for deny and match nothing for allow.</summary>
public sealed class OpaqueConnectionSemanticsTests
{
    private static readonly Caller Frontend = Caller.From(SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/frontend"));

    private static Decision Connect(AccessPolicy[] policies, int port = 6379, MeshDefault meshDefault = MeshDefault.AllowAuthenticated) =>
        new PolicySet(policies, meshDefault).For("shop", "orders").EvaluateConnection(Frontend, port);

    [Fact]
    public void ADenyRuleOnMethodsDeniesAConnectionToItsPort()
    {
        var decision = Connect([Deny("d", Rule("no-delete", [Id("frontend")], [To(ports: [6379], methods: ["DELETE"])]))]);
        Assert.Equal(new Decision(Verdict.Deny, DecisionReason.DenyRule, "shop/d", "no-delete"), decision);
    }

    [Fact]
    public void ADenyRuleOnPathsOrHeadersDeniesAConnectionToo()
    {
        Assert.Equal(Verdict.Deny, Connect([Deny("d", Rule("no-admin", [Id("frontend")], [To(paths: ["/admin"])]))]).Verdict);
        Assert.Equal(Verdict.Deny, Connect([Deny("d", Rule("no-tenant", [Id("frontend")], when: [Header("x-tenant", "acme")]))]).Verdict);
    }

    [Fact]
    public void ADenyRuleForAnotherPortLeavesTheConnectionAlone() =>
        Assert.Equal(Verdict.Allow, Connect([Deny("d", Rule("no-delete", [Id("frontend")], [To(ports: [8080], methods: ["DELETE"])]))]).Verdict);

    [Fact]
    public void AnAllowRuleOnMethodsPathsOrHeadersAllowsNoConnection()
    {
        Assert.Equal(DecisionReason.NoAllowRuleMatched, Connect([Allow("a", Rule("gets", [Id("frontend")], [To(ports: [6379], methods: ["GET"])]))]).Reason);
        Assert.Equal(DecisionReason.NoAllowRuleMatched, Connect([Allow("a", Rule("orders", [Id("frontend")], [To(paths: ["/orders"])]))]).Reason);
        Assert.Equal(DecisionReason.NoAllowRuleMatched, Connect([Allow("a", Rule("acme", [Id("frontend")], when: [Header("x-tenant", "acme")]))]).Reason);
    }

    [Fact]
    public void AnAllowRuleOnPortsAloneAllowsTheConnection() =>
        Assert.Equal(Verdict.Allow, Connect([Allow("a", Rule("db", [Id("frontend")], [To(ports: [6379])]))]).Verdict);

    [Fact]
    public void TheSameDenyRuleMatchesOnlyItsMethodForAnHttpRequest()
    {
        var set = new PolicySet([Deny("d", Rule("no-delete", [Id("frontend")], [To(methods: ["DELETE"])]))], MeshDefault.AllowAuthenticated).For("shop", "orders");
        Assert.Equal(Verdict.Allow, set.Evaluate(Frontend, 8080, "GET", "/", new NoHeaders()).Verdict);
        Assert.Equal(Verdict.Deny, set.EvaluateConnection(Frontend, 8080).Verdict);
    }
}
