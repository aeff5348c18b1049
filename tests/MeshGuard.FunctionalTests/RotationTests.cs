using System.Net;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>SVIDs that live 5 seconds are renewed under steady traffic without a single failed call.</summary>
public sealed class RotationTests : MeshTest
{
    private RecordingApp _ordersApp = null!;
    private RecordingApp _frontendApp = null!;

    protected override async Task StartAsync()
    {
        await Mesh.StartControlPlaneAsync(svidTtl: TimeSpan.FromSeconds(5), defaultPolicy: "allow-authenticated");
        _ordersApp = await StartAppAsync("orders");
        _frontendApp = await StartAppAsync("frontend");
    }

    [Fact]
    public async Task SteadyCallsSeeNoFailureAcrossSeveralRenewalsAndProcessesStopGracefully()
    {
        var orders = await Mesh.StartSidecarAsync("orders", _ordersApp.Port);
        var frontend = await Mesh.StartSidecarAsync("frontend", _frontendApp.Port);
        // Calls share long-lived HTTP/2 connections and also open new ones (a second client) as SVIDs change.
        using var client = SidecarAdmin.ThroughOutbound(frontend);

        var ordersSerials = new HashSet<string>();
        var frontendSerials = new HashSet<string>();
        var failures = new List<string>();
        var calls = 0;
        var end = DateTime.UtcNow.AddSeconds(12);
        var nextSample = DateTime.MinValue;
        while (DateTime.UtcNow < end)
        {
            try
            {
                using var response = await client.GetAsync(new Uri($"http://orders/steady/{calls}"));
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    failures.Add($"call {calls}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }
            }
            catch (HttpRequestException e)
            {
                failures.Add($"call {calls}: {e.Message}");
            }
            calls++;
            if (DateTime.UtcNow >= nextSample)
            {
                ordersSerials.Add(SidecarAdmin.SvidSerial(orders));
                frontendSerials.Add(SidecarAdmin.SvidSerial(frontend));
                nextSample = DateTime.UtcNow.AddMilliseconds(500);
            }
            await Task.Delay(20);
        }

        Assert.Empty(failures);
        Assert.True(calls > 120, $"only {calls} calls were made");
        // Renewal comes at 65-75 % of a 5 s life: three SVIDs at least in 12 s, two renewals under the calls.
        Assert.True(ordersSerials.Count >= 3, $"orders had {ordersSerials.Count} SVIDs in 12s");
        Assert.True(frontendSerials.Count >= 3, $"frontend had {frontendSerials.Count} SVIDs in 12s");
        Assert.Equal(calls, _ordersApp.Requests.Count(r => r.Path.StartsWith("/steady/", StringComparison.Ordinal)));

        // SIGTERM: each process exits by itself, with code 0, well within the grace period.
        foreach (var process in new[] { frontend.Sidecar!, orders.Sidecar!, Mesh.Processes[0] })
        {
            Assert.True(await process.StopAsync(TimeSpan.FromSeconds(10)), $"{process.Name} had to be killed");
            Assert.Equal(0, process.ExitCode);
        }
    }
}
