using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// The control plane is not on the data path: killed under steady load it costs no request while SVIDs are
/// valid, and when it returns the snapshot streams reconnect from the version each sidecar holds and SVID
/// renewal goes on; a replica restarted while it is away serves from its disk snapshot.
/// </summary>
public sealed class ControlPlaneFaultTests : MeshTest
{
    // Renewal at 65-75% of life leaves at least 4 s of validity at any moment: more than the outage below.
    private static readonly TimeSpan SvidTtl = TimeSpan.FromSeconds(16);
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(2);

    private RecordingApp _ordersApp = null!;
    private RecordingApp _frontendApp = null!;

    protected override async Task StartAsync()
    {
        _ordersApp = await StartAppAsync("orders");
        _frontendApp = await StartAppAsync("frontend");
    }

    [Fact]
    public async Task AKilledControlPlaneFailsNoRequestAndWhenItReturnsStreamsResumeAndRenewalGoesOn()
    {
        var cp = await Mesh.StartControlPlaneAsync(svidTtl: SvidTtl, defaultPolicy: "allow-authenticated");
        var orders = await Mesh.StartSidecarAsync("orders", _ordersApp.Port);
        var frontend = await Mesh.StartSidecarAsync("frontend", _frontendApp.Port);
        await SidecarAdmin.WaitForServicesAsync(frontend, 2);
        using var client = SidecarAdmin.ThroughOutbound(frontend);
        await using var load = SteadyLoad.Start(client, n => new HttpRequestMessage(HttpMethod.Get, $"http://orders/steady/{n}"), workers: 2);
        await load.RunForAsync(100);
        var versionBefore = SidecarAdmin.Config(frontend).GetProperty("version").GetInt64();

        Mesh.Processes[0].Kill();
        Assert.True(await Eventually.TrueAsync(() => SidecarAdmin.Config(frontend).GetProperty("stale").GetBoolean(), TimeSpan.FromSeconds(5)),
            "the sidecar never noticed the control plane was gone");
        await Task.Delay(Outage);
        await load.RunForAsync(400);

        // The same data directory and ports: the same CA, registry and policies.
        var serials = (Orders: SidecarAdmin.SvidSerial(orders), Frontend: SidecarAdmin.SvidSerial(frontend));
        await Mesh.StartControlPlaneAsync(svidTtl: SvidTtl, defaultPolicy: "allow-authenticated", ports: [cp.BootstrapPort, cp.GrpcPort, cp.AdminPort, cp.WebhookPort]);
        foreach (var sidecar in new[] { orders, frontend })
        {
            Assert.True(await Eventually.TrueAsync(() => SidecarAdmin.Config(sidecar).GetProperty("connected").GetBoolean(), TimeSpan.FromSeconds(15)),
                $"{sidecar.Name} never reconnected to the control plane");
            var config = SidecarAdmin.Config(sidecar);
            Assert.False(config.GetProperty("stale").GetBoolean());
            Assert.True(config.GetProperty("version").GetInt64() >= versionBefore);
        }
        // Renewal goes on with the returned control plane: each sidecar gets a new SVID from it.
        Assert.True(await Eventually.TrueAsync(() => SidecarAdmin.SvidSerial(orders) != serials.Orders && SidecarAdmin.SvidSerial(frontend) != serials.Frontend, SvidTtl),
            "SVID renewal did not resume after the control plane returned");
        await load.RunForAsync(100);
        await load.StopAsync();

        Assert.Empty(load.Failures);
        // Every request reached the app; the stop may cut one per worker after the app saw it.
        Assert.InRange(_ordersApp.Requests.Count(r => r.Path.StartsWith("/steady/", StringComparison.Ordinal)), load.Sent, load.Sent + 2);
        Console.WriteLine($"control plane killed for {Outage.TotalSeconds:F0}s and restarted: {load.Sent} requests, 0 failed");

        // What the sidecars logged while it was gone went up once it was back, in segments far above Kestrel's
        // 64 KiB default: after a graceful stop each copy is its log, byte for byte.
        foreach (var sidecar in new[] { orders, frontend })
        {
            Assert.True(await sidecar.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));
            var copy = Mesh.Data.CollectedFlowLog(sidecar.Identity.ToString());
            Assert.True(TestFlowLog.Bytes(sidecar.FlowDirectory!).Length > 128 * 1024);
            Assert.True(await Eventually.TrueAsync(() => TestFlowLog.Bytes(copy).AsSpan().SequenceEqual(TestFlowLog.Bytes(sidecar.FlowDirectory!)), TimeSpan.FromSeconds(20)),
                $"the copy of {sidecar.Identity} holds {TestFlowLog.Bytes(copy).Length} bytes, the log {TestFlowLog.Bytes(sidecar.FlowDirectory!).Length}");
        }
    }

    [Fact]
    public async Task AReplicaRestartedWhileTheControlPlaneIsDownServesFromItsDiskSnapshotAndNoRequestFails()
    {
        await Mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
        var otherApp = await StartAppAsync("orders-b");
        var restarted = await Mesh.StartSidecarAsync("orders", _ordersApp.Port);
        await Mesh.StartSidecarAsync("orders", otherApp.Port);
        var frontend = await Mesh.StartSidecarAsync("frontend", _frontendApp.Port);
        Assert.True(await Eventually.TrueAsync(() => SidecarAdmin.Config(frontend).GetProperty("endpoints").GetInt32() >= 3, TimeSpan.FromSeconds(30)));
        using var client = SidecarAdmin.ThroughOutbound(frontend);
        await using var load = SteadyLoad.Start(client, n => new HttpRequestMessage(HttpMethod.Get, $"http://orders/steady/{n}"), workers: 2);
        await load.RunForAsync(100);

        Mesh.Processes[0].Kill();
        await Mesh.RestartSidecarAsync(restarted);
        var config = SidecarAdmin.Config(restarted);
        Assert.Equal("disk", config.GetProperty("source").GetString());
        Assert.True(config.GetProperty("stale").GetBoolean());

        // The other replica carried the load meanwhile; the restarted one takes its share again after its break.
        var before = _ordersApp.Requests.Count;
        Assert.True(await Eventually.TrueAsync(() => _ordersApp.Requests.Count > before + 20, TimeSpan.FromSeconds(30)),
            "the replica restarted from its disk snapshot never served again");
        await load.StopAsync();
        Assert.Empty(load.Failures);
        Console.WriteLine($"replica restarted with the control plane down: {load.Sent} requests, 0 failed; it served from its disk snapshot");
    }
}
