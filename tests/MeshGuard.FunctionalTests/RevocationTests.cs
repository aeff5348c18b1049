using System.Net;
using System.Text.RegularExpressions;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// <c>meshctl identity revoke</c>: the control plane sends the revocation list in every snapshot, and each
/// sidecar refuses the revoked identity at once, closes its open connections, while everyone else is served.
/// </summary>
public sealed partial class RevocationTests : MeshTest
{
    protected override Task StartAsync() => Mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");

    private async Task<(MeshService Sidecar, RecordingApp App)> ServiceAsync(string name)
    {
        var app = await StartAppAsync(name);
        return (await Mesh.StartSidecarAsync(name, app.Port), app);
    }

    private static int From(RecordingApp app, string caller) =>
        app.Requests.Count(r => r.Headers.TryGetValue("x-forwarded-client-cert", out var xfcc) && xfcc.Contains($"/sa/{caller}", StringComparison.Ordinal));

    [GeneratedRegex(@"(\d+) open connections of revoked peers closed")]
    private static partial Regex ClosedConnections();

    [Fact]
    public async Task ARevokedIdentityIsRefusedWithinASecondItsOpenConnectionsAreClosedAndOthersAreStillServed()
    {
        var (orders, ordersApp) = await ServiceAsync("orders");
        var (frontend, _) = await ServiceAsync("frontend");
        var (checkout, _) = await ServiceAsync("checkout");
        await SidecarAdmin.WaitForServicesAsync(frontend, 3);
        await SidecarAdmin.WaitForServicesAsync(checkout, 3);
        using var frontendClient = SidecarAdmin.ThroughOutbound(frontend);
        using var checkoutClient = SidecarAdmin.ThroughOutbound(checkout);
        // Both callers hold HTTP/2 connections to orders' sidecar open while they call.
        await using var revokedLoad = SteadyLoad.Start(frontendClient, n => new HttpRequestMessage(HttpMethod.Get, $"http://orders/f/{n}"), workers: 2);
        await using var otherLoad = SteadyLoad.Start(checkoutClient, n => new HttpRequestMessage(HttpMethod.Get, $"http://orders/c/{n}"), workers: 2);
        await revokedLoad.RunForAsync(100);
        Assert.Empty(revokedLoad.Failures);

        var (exit, output) = await Cli.RunAsync("meshctl", "identity", "revoke", "--data", Mesh.Data.Root, "--spiffe-id", frontend.Identity.ToString());
        Assert.True(exit == 0, output);
        var revokedAt = DateTime.UtcNow;
        Assert.True(await Eventually.TrueAsync(() => orders.Sidecar!.ReadLog().Contains("revocation list applied", StringComparison.Ordinal), TimeSpan.FromSeconds(5)),
            "orders' sidecar never applied the revocation list");
        var applied = DateTime.UtcNow - revokedAt;
        Assert.True(applied < TimeSpan.FromSeconds(1), $"the revocation took {applied.TotalMilliseconds:F0} ms to reach the callee");
        var closed = ClosedConnections().Match(orders.Sidecar!.ReadLog());
        Assert.True(closed.Success && int.Parse(closed.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 1,
            "the revoked caller's open connection was not closed");

        // From here on nothing of the revoked caller reaches the app, while the other caller goes on.
        await Task.Delay(200);
        var seen = From(ordersApp, "frontend");
        await otherLoad.RunForAsync(200);
        await revokedLoad.RunForAsync(20);
        Assert.Equal(seen, From(ordersApp, "frontend"));
        Assert.NotEmpty(revokedLoad.Failures);
        await otherLoad.StopAsync();
        Assert.Empty(otherLoad.Failures);
        await revokedLoad.StopAsync();

        // The revoked identity cannot come back through a join token either.
        var again = await Mesh.StartSidecarAsync("frontend", 9, waitReady: false);
        Assert.True(await Eventually.TrueAsync(() => again.Sidecar!.HasExited, TimeSpan.FromSeconds(30)), "a revoked identity was admitted");
        Assert.Contains("is revoked", again.Sidecar!.ReadLog(), StringComparison.Ordinal);
        Console.WriteLine($"revocation: applied at the callee {applied.TotalMilliseconds:F0} ms after meshctl, {closed.Groups[1].Value} open connection(s) closed");

        // Taken off the list, the identity is served again (after its endpoint's ejection at the caller ends).
        (exit, output) = await Cli.RunAsync("meshctl", "identity", "unrevoke", "--data", Mesh.Data.Root, "--spiffe-id", frontend.Identity.ToString());
        Assert.True(exit == 0, output);
        Assert.True(await Eventually.TrueAsync(() =>
        {
            using var response = frontendClient.GetAsync(new Uri("http://orders/after")).GetAwaiter().GetResult();
            return response.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(30)), "the identity was not served again after unrevoke");
    }
}
