using System.Net;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>App -> its sidecar's outbound port -> mTLS -> the callee's sidecar -> the callee's app.</summary>
[Collection(nameof(MeshCollection))]
public sealed class MeshCallTests(MeshFixture mesh)
{
    private HttpClient ThroughFrontendProxy() => SidecarAdmin.ThroughOutbound(mesh.Frontend);

    [Fact]
    public async Task ACallThroughTwoSidecarsReachesTheAppWithTheCallersIdentity()
    {
        using var client = ThroughFrontendProxy();
        using var response = await client.GetAsync(new Uri("http://orders/orders/42?x=1"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("orders /orders/42", await response.Content.ReadAsStringAsync());
        var seen = Assert.Single(mesh.OrdersApp.Requests, r => r.Path == "/orders/42");
        Assert.Equal(
            "By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/shop/sa/frontend",
            seen.Headers["x-forwarded-client-cert"]);
        Assert.Equal("orders", seen.Headers["Host"]);
    }

    [Theory]
    [InlineData("orders")]
    [InlineData("orders:8080")]
    [InlineData("orders.shop")]
    [InlineData("orders.shop:8080")]
    public async Task TheOutboundPortAlsoRoutesByHostHeader(string host)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(15) };
        var path = "/by-host/" + host.Replace(':', '-');
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"http://127.0.0.1:{mesh.Frontend.OutboundPort}{path}"))
        {
            Content = new StringContent("payload"),
        };
        request.Headers.Host = host;
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = Assert.Single(mesh.OrdersApp.Requests, r => r.Path == path);
        Assert.Equal("POST", seen.Method);
    }

    [Fact]
    public async Task AnUnknownServiceGets502NamingIt()
    {
        using var client = ThroughFrontendProxy();
        using var response = await client.GetAsync(new Uri("http://inventory/items"));
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Contains("no service in the mesh is called inventory", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AForgedForwardedClientCertFromTheAppNeverReachesTheCallee()
    {
        using var client = ThroughFrontendProxy();
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("http://orders/forged-outbound"));
        request.Headers.TryAddWithoutValidation("x-forwarded-client-cert", "By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/shop/sa/admin");
        request.Headers.TryAddWithoutValidation("x-meshguard-identity", "spiffe://mesh.local/ns/shop/sa/admin");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = Assert.Single(mesh.OrdersApp.Requests, r => r.Path == "/forged-outbound");
        Assert.Equal("By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/shop/sa/frontend", seen.Headers["x-forwarded-client-cert"]);
        Assert.DoesNotContain(seen.Headers.Keys, k => k.StartsWith("x-meshguard-", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task AForgedForwardedClientCertFromAMeshPeerIsReplacedByItsRealIdentity()
    {
        const string caller = "spiffe://mesh.local/ns/shop/sa/checkout";
        var outcome = await PeerClient.GetAsync(mesh.Orders.InboundPort, "/forged-inbound", mesh.Bundle, mesh.RealCa.IssueLeaf(caller), mesh.RealCa.Intermediates,
            new Dictionary<string, string>
            {
                ["x-forwarded-client-cert"] = "By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/shop/sa/admin",
                ["X-MeshGuard-Caller"] = "admin",
            });
        Assert.Equal(200, outcome.Status);
        var seen = Assert.Single(mesh.OrdersApp.Requests, r => r.Path == "/forged-inbound");
        Assert.Equal($"By=spiffe://mesh.local/ns/shop/sa/orders;URI={caller}", seen.Headers["x-forwarded-client-cert"]);
        Assert.DoesNotContain(seen.Headers.Keys, k => k.StartsWith("x-meshguard-", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task WhereAMeshPeerSaysARequestCameFromNeverReachesTheAppButItsOtherHeadersDo()
    {
        const string caller = "spiffe://mesh.local/ns/shop/sa/checkout";
        var outcome = await PeerClient.GetAsync(mesh.Orders.InboundPort, "/forwarded-inbound", mesh.Bundle, mesh.RealCa.IssueLeaf(caller), mesh.RealCa.Intermediates,
            new Dictionary<string, string>
            {
                ["Forwarded"] = "for=10.0.0.1",
                ["X-Forwarded-For"] = "10.0.0.1",
                ["x-forwarded-host"] = "admin.internal",
                ["X-Forwarded-Proto"] = "https",
                ["X-Real-IP"] = "10.0.0.1",
                ["x-tenant"] = "acme",
            });
        Assert.Equal(200, outcome.Status);
        var seen = Assert.Single(mesh.OrdersApp.Requests, r => r.Path == "/forwarded-inbound");
        Assert.Equal("acme", seen.Headers["x-tenant"]);
        Assert.DoesNotContain(seen.Headers.Keys, k => k.Equals("forwarded", StringComparison.OrdinalIgnoreCase) || k.StartsWith("x-forwarded-", StringComparison.OrdinalIgnoreCase) && !k.Equals("x-forwarded-client-cert", StringComparison.OrdinalIgnoreCase)
            || k.Equals("x-real-ip", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task AWorkloadCanNeitherClaimAnotherServiceNorTakeAnotherIdentitysAddress()
    {
        // sa/evil, with a join token of its own, claims the service "payments": the registry refuses it, and the
        // token stays unspent (the refusal comes before it is spent).
        await using var paymentsApp = await MeshGuard.Tests.Common.RecordingApp.StartAsync("payments");
        var evilToken = mesh.Mesh.CreateJoinToken(Ctl.Demo.LocalMesh.IdentityOf("evil"));
        var claimant = await mesh.Mesh.StartSidecarAsync("payments", paymentsApp.Port, joinToken: evilToken, waitReady: false);
        Assert.True(await Eventually.TrueAsync(() => claimant.Sidecar!.HasExited, TimeSpan.FromSeconds(30)), "the impostor kept running");
        Assert.True(await Eventually.TrueAsync(() => claimant.Sidecar!.ReadLog().Contains(
            "spiffe://mesh.local/ns/shop/sa/evil may not serve service 'payments' of namespace 'shop'", StringComparison.Ordinal)), claimant.Sidecar!.ReadLog());

        // The real payments identity advertising orders' address: the address stays orders'.
        var squatter = await mesh.Mesh.StartSidecarAsync("payments", paymentsApp.Port, advertiseAddress: $"127.0.0.1:{mesh.Orders.InboundPort}", waitReady: false);
        Assert.True(await Eventually.TrueAsync(() => squatter.Sidecar!.HasExited, TimeSpan.FromSeconds(30)), "the squatter kept running");
        Assert.True(await Eventually.TrueAsync(() => squatter.Sidecar!.ReadLog().Contains(
            $"127.0.0.1:{mesh.Orders.InboundPort} is registered to spiffe://mesh.local/ns/shop/sa/orders", StringComparison.Ordinal)), squatter.Sidecar!.ReadLog());

        // Nothing changed for callers: orders is reached, and no payments endpoint exists.
        using var client = ThroughFrontendProxy();
        using var toOrders = await client.GetAsync(new Uri("http://orders/still-orders"));
        Assert.Equal(HttpStatusCode.OK, toOrders.StatusCode);
        using var toPayments = await client.GetAsync(new Uri("http://payments/card-data"));
        Assert.Equal(HttpStatusCode.BadGateway, toPayments.StatusCode);
        Assert.Empty(paymentsApp.Requests);
    }

    [Fact]
    public async Task AdminCertsShowsTheSvidThatMeshctlCanInspect()
    {
        var (exit, output) = await Cli.RunAsync("meshctl", "certs", "inspect", "--admin", $"http://127.0.0.1:{mesh.Orders.AdminPort}");
        Assert.Equal(0, exit);
        Assert.Contains("spiffe_id:  spiffe://mesh.local/ns/shop/sa/orders", output, StringComparison.Ordinal);
        Assert.Contains("[1] chain", output, StringComparison.Ordinal);
        Assert.Contains("issuer:     CN=MeshGuard Intermediate CA", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MeshctlInspectsAPemFileAndShowsTheBundleOfTheDataDirectory()
    {
        var (exit, output) = await Cli.RunAsync("meshctl", "certs", "inspect", mesh.Mesh.Data.TrustBundle);
        Assert.Equal(0, exit);
        Assert.Contains("[0] ca", output, StringComparison.Ordinal);
        Assert.Contains("spiffe_id:  spiffe://mesh.local", output, StringComparison.Ordinal);
        Assert.Contains("subject:    CN=MeshGuard Root CA", output, StringComparison.Ordinal);

        var (bundleExit, bundle) = await Cli.RunAsync("meshctl", "bundle", "show", "--data", mesh.Mesh.Data.Root);
        Assert.Equal(0, bundleExit);
        Assert.Equal(mesh.Bundle.ToPem(), bundle);
    }

    [Fact]
    public async Task TheAdminPortListensOnLoopbackOnlyAndReportsReady()
    {
        using var client = new HttpClient();
        Assert.Equal("ready\n", await client.GetStringAsync(new Uri($"http://127.0.0.1:{mesh.Orders.AdminPort}/ready")));
        var listeners = await File.ReadAllTextAsync("/proc/net/tcp");
        var port = mesh.Orders.AdminPort.ToString("X4", System.Globalization.CultureInfo.InvariantCulture);
        // Listening sockets (state 0A) on the admin port are bound to 0100007F (127.0.0.1) only.
        var lines = listeners.Split('\n').Where(l => l.Contains($":{port} ", StringComparison.Ordinal) && l.Contains(" 0A ", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(lines);
        Assert.All(lines, l => Assert.Contains($"0100007F:{port}", l, StringComparison.Ordinal));
    }
}
