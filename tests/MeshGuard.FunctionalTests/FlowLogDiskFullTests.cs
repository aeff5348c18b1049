using System.Net;
using MeshGuard.Ctl.Demo;
using MeshGuard.FlowLog;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// The callee's flow log lives on a 96 KiB tmpfs that the test mounts (as root; where mounting is refused the
/// test fails and says so). Filling it costs no request; the loss is counted, and once space returns the log
/// goes on in a new file whose gap record states how many records were lost.
/// </summary>
public sealed partial class FlowLogDiskFullTests : IAsyncLifetime
{
    private readonly TempDirectory _temp = new();
    private LocalMesh _mesh = null!;
    private RecordingApp _ordersApp = null!;
    private RecordingApp _frontendApp = null!;
    private MeshService _orders = null!;
    private MeshService _frontend = null!;
    private string _mount = null!;

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        _mesh = new LocalMesh(_temp.Path);
        // The first sidecar called orders writes to <mesh>/orders/flows: mount the small disk there.
        _mount = Path.Combine(_temp.Path, "orders", "flows");
        Directory.CreateDirectory(_mount);
        var (exit, output) = await ExternalProcess.RunAsync("mount", ["-t", "tmpfs", "-o", "size=96k", "tmpfs", _mount]);
        Assert.True(exit == 0, $"this test needs to mount a small tmpfs (root): {output}");
        await _mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
        _ordersApp = await RecordingApp.StartAsync("orders");
        _frontendApp = await RecordingApp.StartAsync("frontend");
        _orders = await _mesh.StartSidecarAsync("orders", _ordersApp.Port);
        Assert.Equal(_mount, _orders.FlowDirectory);
        _frontend = await _mesh.StartSidecarAsync("frontend", _frontendApp.Port);
        await SidecarAdmin.WaitForServicesAsync(_frontend, 2);
    }

    public async Task DisposeAsync()
    {
        await _mesh.DisposeAsync();
        await ExternalProcess.RunAsync("umount", [_mount]);
        await _ordersApp.DisposeAsync();
        await _frontendApp.DisposeAsync();
        _temp.Dispose();
    }

    [Fact]
    public async Task AFullDiskCostsNoRequestTheLossIsCountedAndAGapRecordStatesItOnceSpaceReturns()
    {
        using var client = SidecarAdmin.ThroughOutbound(_frontend);
        var calls = 0;
        long lost = 0;
        // Each record is a few hundred bytes: the disk is full after a few hundred calls.
        while (calls < 5000 && lost == 0)
        {
            for (var i = 0; i < 100; i++, calls++)
            {
                using var response = await client.GetAsync(new Uri($"http://orders/disk/{calls}"));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
            await Task.Delay(100);
            lost = Counter(await SidecarAdmin.MetricsAsync(_orders), "meshguard_flowlog_records_lost_total");
        }
        Assert.True(lost > 0, $"{calls} calls and no record was lost: is the log really on the small disk?");
        Assert.Equal(calls, _ordersApp.Requests.Count(r => r.Path.StartsWith("/disk/", StringComparison.Ordinal)));

        var (exit, output) = await ExternalProcess.RunAsync("mount", ["-o", "remount,size=16m", _mount]);
        Assert.True(exit == 0, output);
        for (var i = 0; i < 20; i++)
        {
            using var response = await client.GetAsync(new Uri($"http://orders/after/{i}"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        // The writer retries once a second; the gap record is the first thing it writes after the new start.
        Assert.True(await Eventually.TrueAsync(() => FlowLogReader.Records(_mount).Any(r => r.Text("path") == "/after/19"), TimeSpan.FromSeconds(10)),
            "records after the disk had space again never reached the log");
        var metrics = await SidecarAdmin.MetricsAsync(_orders);
        lost = Counter(metrics, "meshguard_flowlog_records_lost_total");
        var declared = FlowLogReader.Records(_mount).Where(r => r.Text("kind") == "gap").Sum(r => r.Number("missing"));
        Assert.Equal(lost, declared);
        Console.WriteLine($"disk full: {calls} calls all served; {lost} records lost and declared by gap records");

        // The verifier sees the declared gap (and the line the full disk cut short), nothing silent.
        var (_, verify) = await Cli.RunAsync("meshctl", "flows", "verify", _mount, "--bundle", _mesh.Data.TrustBundle);
        Assert.Contains("lost", verify, StringComparison.OrdinalIgnoreCase);
    }

    private static long Counter(string metrics, string name) => SidecarAdmin.MetricValue(metrics, name) ?? 0;
}
