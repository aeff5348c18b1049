using System.Text.RegularExpressions;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Once its ports are open a control plane takes a joining sidecar's paths on itself (the bootstrap port, a config
/// stream, a snapshot), so that the first sidecar does not wait while the runtime compiles them; none of it counts as
/// a workload.
/// </summary>
[Trait("Subject", "ControlPlane")]
public sealed class ControlPlaneWarmUpTests : MeshTest
{
    [Fact]
    public async Task AStartedControlPlaneWarmsTheJoiningPathsOnItselfAndRegistersNothing()
    {
        var cp = await Mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
        var process = Mesh.Processes[0];
        Assert.True(await Eventually.TrueAsync(
            () => process.ReadLog().Contains("warmed up (snapshot, bootstrap, config stream)", StringComparison.Ordinal), TimeSpan.FromSeconds(30)),
            process.ReadLog());

        // The config stream refused the control plane's own identity, and nothing was attested or registered.
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{cp.AdminPort}") };
        Assert.Contains("meshguard_cp_registered_endpoints 0\n", await admin.GetStringAsync("/metrics"), StringComparison.Ordinal);
        var log = process.ReadLog();
        Assert.DoesNotContain("attested", log, StringComparison.Ordinal);
        Assert.DoesNotContain("refused attestation", log, StringComparison.Ordinal);
        // One SVID of its own, though the warm-up and the first handshakes asked for it at once.
        Assert.Single(Regex.Matches(log, "control plane SVID"));

        // A sidecar joins after it as any other.
        var app = await StartAppAsync("orders");
        await Mesh.StartSidecarAsync("orders", app.Port);
        Assert.Contains("meshguard_cp_registered_endpoints 1\n", await admin.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }
}
