using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>What sidecars must show after the control-plane replica they used is lost: stream, then renewal, at the other.</summary>
internal static class ReplicaFailover
{
    public static async Task StreamsMovedAsync(ControlPlaneEndpoints to, params MeshService[] sidecars)
    {
        var at = $"https://127.0.0.1:{to.GrpcPort}/";
        foreach (var sidecar in sidecars)
        {
            Assert.True(await Eventually.TrueAsync(() => sidecar.Sidecar!.ReadLog().Contains("using " + at, StringComparison.Ordinal)
                    && SidecarAdmin.Config(sidecar).GetProperty("connected").GetBoolean(), TimeSpan.FromSeconds(15)),
                $"{sidecar.Name} did not move its stream to {at}:\n{sidecar.Sidecar!.ReadLog()}");
        }
    }

    /// <summary>Each sidecar's next renewal goes to <paramref name="to"/> (within one SVID lifetime and a margin).</summary>
    public static async Task RenewalsMovedAsync(ControlPlaneEndpoints to, TimeSpan svidTtl, params MeshService[] sidecars)
    {
        var at = $"at https://127.0.0.1:{to.GrpcPort}/";
        Assert.True(await Eventually.TrueAsync(() => sidecars.All(s => s.Sidecar!.ReadLog().Contains(at, StringComparison.Ordinal)), svidTtl + TimeSpan.FromSeconds(5)),
            $"no renewal {at} after the other replica was lost");
    }
}
