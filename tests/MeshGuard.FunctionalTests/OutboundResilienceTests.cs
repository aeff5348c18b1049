using System.Net;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A service with several replicas, as the caller's sidecar sees it: least-requests balancing, passive health
/// (a failing endpoint's circuit opens and it is tried again later), retries for requests that may be repeated,
/// per-try timeouts, and a fast 503 when no endpoint is left.
/// </summary>
public sealed class OutboundResilienceTests : MeshTest
{
    protected override Task StartAsync() => Mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");

    /// <summary>A frontend sidecar that knows <paramref name="endpoints"/> endpoints (its own included).</summary>
    private async Task<MeshService> FrontendAsync(int endpoints, params string[] arguments)
    {
        var app = await StartAppAsync("frontend");
        var frontend = await Mesh.StartSidecarAsync("frontend", app.Port, extraArguments: arguments);
        Assert.True(await Eventually.TrueAsync(() => SidecarAdmin.Config(frontend).GetProperty("endpoints").GetInt32() >= endpoints, TimeSpan.FromSeconds(30)),
            $"frontend never saw {endpoints} endpoints");
        return frontend;
    }

    private static async Task<long> MetricAsync(MeshService sidecar, string name) =>
        SidecarAdmin.MetricValue(await SidecarAdmin.MetricsAsync(sidecar), name) ?? throw new Xunit.Sdk.XunitException($"{name} is not in /metrics");

    private static int Served(RecordingApp app, string prefix) => app.Requests.Count(r => r.Path.StartsWith(prefix, StringComparison.Ordinal));

    [Fact]
    public async Task NoGetFailsWhileOneOfThreeReplicasIsKilledAndTheDeadOneIsEjectedThenTakenBackWhenItReturns()
    {
        var apps = new RecordingApp[3];
        var replicas = new MeshService[3];
        for (var i = 0; i < 3; i++)
        {
            apps[i] = await StartAppAsync($"orders-{i}");
            replicas[i] = await Mesh.StartSidecarAsync("orders", apps[i].Port);
        }
        var frontend = await FrontendAsync(4, "--circuit-break", "2s");
        using var client = SidecarAdmin.ThroughOutbound(frontend);
        await using var load = SteadyLoad.Start(client, n => new HttpRequestMessage(HttpMethod.Get, $"http://orders/steady/{n}"));

        await load.RunForAsync(300);
        // Spread: each replica has a fair share (power of two choices over requests in flight).
        var total = apps.Sum(a => Served(a, "/steady/"));
        foreach (var app in apps)
        {
            Assert.True(Served(app, "/steady/") > total / 10, $"one replica got {Served(app, "/steady/")} of {total} requests");
        }

        replicas[2].Sidecar!.Kill();
        Assert.True(await Eventually.TrueAsync(() => SidecarAdmin.Config(frontend).GetProperty("endpoints_ejected").GetInt32() == 1, TimeSpan.FromSeconds(10)),
            "the killed replica was never ejected");
        // Counted once the process is gone: a request its sidecar forwarded just before the kill may land after it.
        Assert.True(await Eventually.TrueAsync(() => replicas[2].Sidecar!.HasExited, TimeSpan.FromSeconds(10)));
        await Task.Delay(200);
        var servedByDead = Served(apps[2], "/steady/");
        await load.RunForAsync(500);
        Assert.Equal(servedByDead, Served(apps[2], "/steady/"));
        Assert.True(await MetricAsync(frontend, "meshguard_outbound_ejections_total") >= 1);

        // Back on the same address: after its break, a trial call succeeds and it takes its share again.
        await Mesh.RestartSidecarAsync(replicas[2]);
        Assert.True(await Eventually.TrueAsync(() => Served(apps[2], "/steady/") > servedByDead + 20, TimeSpan.FromSeconds(30)),
            "the replica that came back never got requests again");
        Assert.Equal(0, SidecarAdmin.Config(frontend).GetProperty("endpoints_ejected").GetInt32());
        await load.StopAsync();

        Assert.Empty(load.Failures);
        var sent = load.Sent;
        Assert.True(sent > 800, $"only {sent} requests were sent");
        Console.WriteLine($"resilience: {sent} GETs, 0 failed while one of three replicas was killed and came back; " +
            $"retries {await MetricAsync(frontend, "meshguard_outbound_retries_total")}, ejections {await MetricAsync(frontend, "meshguard_outbound_ejections_total")}, " +
            $"circuits opened {await MetricAsync(frontend, "meshguard_outbound_circuits_opened_total")}");
    }

    [Fact]
    public async Task AGetThatBreaksIsTriedAgainElsewhereButAPostWhoseBodyWasSentIsNeverRetried()
    {
        // Two replicas in front of one app, whose /abort paths read the request and drop the connection.
        var app = await StartAppAsync("orders");
        await Mesh.StartSidecarAsync("orders", app.Port);
        await Mesh.StartSidecarAsync("orders", app.Port);
        var frontend = await FrontendAsync(3, "--circuit-min-requests", "100");
        using var client = SidecarAdmin.ThroughOutbound(frontend);

        using (var get = await client.GetAsync(new Uri("http://orders/abort/get")))
        {
            Assert.Equal(HttpStatusCode.BadGateway, get.StatusCode);
        }
        Assert.Equal(3, app.Requests.Count(r => r.Path == "/abort/get"));

        using (var post = await client.PostAsync(new Uri("http://orders/abort/post"), new StringContent("charge the card once")))
        {
            Assert.Equal(HttpStatusCode.BadGateway, post.StatusCode);
        }
        var posts = app.Requests.Where(r => r.Path == "/abort/post").ToList();
        Assert.Single(posts);
        Assert.Equal("charge the card once", posts[0].Body);
        Assert.Equal(2, await MetricAsync(frontend, "meshguard_outbound_retries_total"));
    }

    [Fact]
    public async Task ATryThatOutlastsThePerTryTimeoutGoesToAnotherReplicaAndEveryGetSucceeds()
    {
        var slow = await StartAppAsync("orders-slow");
        var fast = await StartAppAsync("orders-fast");
        await Mesh.StartSidecarAsync("orders", slow.Port);
        await Mesh.StartSidecarAsync("orders", fast.Port);
        var frontend = await FrontendAsync(3, "--per-try-timeout", "1s", "--circuit-min-requests", "100");
        using var client = SidecarAdmin.ThroughOutbound(frontend);
        // Connections and code paths warm first, so that only the slow app can make a try outlast the timeout.
        while (Served(slow, "/warm") == 0 || Served(fast, "/warm") == 0)
        {
            using var warm = await client.GetAsync(new Uri("http://orders/warm"));
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }
        slow.Delay = TimeSpan.FromSeconds(5);

        for (var i = 0; i < 12; i++)
        {
            using var response = await client.GetAsync(new Uri($"http://orders/timed/{i}"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.StartsWith("orders-fast ", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(12, Served(fast, "/timed/"));
        Assert.True(Served(slow, "/timed/") >= 1, "no try ever went to the slow replica");
        Assert.Equal(Served(slow, "/timed/"), await MetricAsync(frontend, "meshguard_outbound_retries_total"));
    }

    [Fact]
    public async Task WithTheAppDownCallersGetA503FastItsCircuitOpensAndCallsSucceedAgainOnceTheAppIsBack()
    {
        var app = await StartAppAsync("orders");
        var port = app.Port;
        await Mesh.StartSidecarAsync("orders", port);
        // The first call's three tries and the one before it make four: the circuit opens on the next call's first failure.
        var frontend = await FrontendAsync(2, "--circuit-break", "1s", "--circuit-min-requests", "5");
        using var client = SidecarAdmin.ThroughOutbound(frontend);
        using (var up = await client.GetAsync(new Uri("http://orders/up")))
        {
            Assert.Equal(HttpStatusCode.OK, up.StatusCode);
        }

        await StopAppAsync(app);
        var bodies = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            using var down = await client.GetAsync(new Uri($"http://orders/down/{i}"));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
            bodies.Add(await down.Content.ReadAsStringAsync());
        }
        Assert.Contains("meshguard: the app is not reachable\n", bodies);
        Assert.Contains("meshguard: no endpoint of orders is available (every circuit is open)\n", bodies);
        Assert.True(await MetricAsync(frontend, "meshguard_outbound_no_endpoint_total") >= 1);
        Assert.Equal(1, SidecarAdmin.Config(frontend).GetProperty("endpoints_ejected").GetInt32());

        var back = await StartAppAsync("orders", port);
        Assert.True(await Eventually.TrueAsync(() =>
        {
            using var response = client.GetAsync(new Uri("http://orders/back")).GetAwaiter().GetResult();
            return response.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(30)), "calls never succeeded again after the app came back");
        Assert.True(Served(back, "/back") >= 1);
        Assert.Equal(0, SidecarAdmin.Config(frontend).GetProperty("endpoints_ejected").GetInt32());
    }
}
