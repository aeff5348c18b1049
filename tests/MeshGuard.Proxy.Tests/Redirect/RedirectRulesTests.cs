using MeshGuard.Proxy.Redirect;

namespace MeshGuard.Proxy.Tests.Redirect;

public sealed class RedirectRulesTests
{
    private static readonly RedirectRules Injected = new(1337, 15006, 15001, [15000, 15020], []);

    private static string[] RulesOf(string chain, string document) =>
        [.. document.Split('\n').Where(l => l.StartsWith($"-A {chain} ", StringComparison.Ordinal))];

    [Fact]
    public void DocumentIsOneNatTransactionDeclaringEveryChain()
    {
        var lines = Injected.Render().Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal("*nat", lines[0]);
        Assert.Equal("COMMIT", lines[^1]);
        foreach (var chain in RedirectRules.Chains)
        {
            Assert.Contains($":{chain} - [0:0]", lines);
        }
    }

    [Fact]
    public void InboundTcpGoesToTheInboundPortExceptExcludedPorts()
    {
        var document = Injected.Render();

        Assert.Equal(
            [
                "-A MESHGUARD_INBOUND -p tcp --dport 15000 -j RETURN",
                "-A MESHGUARD_INBOUND -p tcp --dport 15020 -j RETURN",
                "-A MESHGUARD_INBOUND -p tcp -j MESHGUARD_IN_REDIRECT",
            ],
            RulesOf("MESHGUARD_INBOUND", document));
        Assert.Equal(["-A MESHGUARD_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"], RulesOf("MESHGUARD_IN_REDIRECT", document));
        Assert.Equal(["-A PREROUTING -p tcp -j MESHGUARD_INBOUND"], RulesOf("PREROUTING", document));
    }

    [Fact]
    public void SidecarUidAndLoopbackAreNotRedirectedAndTheRestGoesToTheOutboundPort()
    {
        var document = new RedirectRules(1337, 15006, 15001, [], [5432]).Render();

        // Order matters: the sidecar's own traffic must return before anything redirects it.
        Assert.Equal(
            [
                "-A MESHGUARD_OUTPUT -m owner --uid-owner 1337 -j RETURN",
                "-A MESHGUARD_OUTPUT -d 127.0.0.1/32 -j RETURN",
                "-A MESHGUARD_OUTPUT -p tcp --dport 5432 -j RETURN",
                "-A MESHGUARD_OUTPUT -j MESHGUARD_REDIRECT",
            ],
            RulesOf("MESHGUARD_OUTPUT", document));
        Assert.Equal(["-A MESHGUARD_REDIRECT -p tcp -j REDIRECT --to-ports 15001"], RulesOf("MESHGUARD_REDIRECT", document));
        Assert.Equal(["-A OUTPUT -p tcp -j MESHGUARD_OUTPUT"], RulesOf("OUTPUT", document));
    }

    [Fact]
    public void TheIpv6DocumentRedirectsTheSameWayAndLeavesIpv6LoopbackAlone()
    {
        var v4 = Injected.Render();
        var v6 = Injected.Render(ipv6: true);
        Assert.Equal(RulesOf("MESHGUARD_INBOUND", v4), RulesOf("MESHGUARD_INBOUND", v6));
        Assert.Equal(RulesOf("MESHGUARD_IN_REDIRECT", v4), RulesOf("MESHGUARD_IN_REDIRECT", v6));
        Assert.Equal(RulesOf("PREROUTING", v4), RulesOf("PREROUTING", v6));
        Assert.Contains("-A MESHGUARD_OUTPUT -d ::1/128 -j RETURN", RulesOf("MESHGUARD_OUTPUT", v6));
        Assert.DoesNotContain(v6.Split('\n'), l => l.Contains("127.0.0.1", StringComparison.Ordinal));
    }
}
