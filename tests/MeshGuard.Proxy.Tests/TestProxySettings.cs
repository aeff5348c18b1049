namespace MeshGuard.Proxy.Tests;

/// <summary>Sidecar settings for tests that build a part of the sidecar by hand: defaults, and what the test names.</summary>
internal static class TestProxySettings
{
    public static ProxySettings Create(string? stateDirectory = null, IReadOnlyList<Uri>? controlPlaneGrpcs = null) => new(
        [new Uri("https://127.0.0.1:1")], controlPlaneGrpcs ?? [new Uri("https://127.0.0.1:2")], "b.pem", null, "orders",
        System.Net.IPAddress.Loopback, 8080, MeshGuard.Proxy.Protocols.AppProtocol.Auto, System.Net.IPAddress.Loopback, 1, 2, 3, 4, "127.0.0.1:1", stateDirectory,
        [], [], TimeSpan.FromSeconds(10), new MeshGuard.Proxy.Limits.ListenerLimits(100, TimeSpan.FromSeconds(10)),
        MeshGuard.Proxy.Outbound.Resilience.OutboundResilience.Default, new MeshGuard.Proxy.FlowLog.FlowLogSettings(null, 1, 1, 1, false));
}
