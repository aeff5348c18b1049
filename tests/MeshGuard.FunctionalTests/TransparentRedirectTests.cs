using System.Text.Json;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Ctl.Demo;
using MeshGuard.FlowLog;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Two pods for real, each a network namespace with its app and its sidecar (running as uid 1337, as injected),
/// and the nat rules of <c>meshguard-proxy redirect install</c>: the frontend calls the orders pod by address with
/// no proxy settings, and the call is carried through mTLS and judged by the orders team's policy. The control
/// plane runs in the node namespace; an app outside the mesh listens there too.
/// </summary>
public sealed class PodNetworkFixture : IAsyncLifetime
{
    public const int ProxyUid = 1337;
    public const int AppUid = 1000;
    public const int AppPort = 8080;
    public const int OutsidePort = 9090;
    public const int AnyAddressPort = 8081;

    private readonly TempDirectory _temp = new();
    private readonly List<MeshProcess> _processes = [];
    private PodNetwork? _network;

    public string FrontendPod { get; private set; } = "";

    public string OrdersPod { get; private set; } = "";

    public string Node => _network!.Node;

    public string OrdersAddress { get; } = PodNetwork.AddressOf(2);

    public string FlowDirectoryOf(string pod) => _temp.Combine(pod, "flows");

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        _network = await PodNetwork.CreateAsync();
        FrontendPod = await _network.AddPodAsync("frontend", 1);
        OrdersPod = await _network.AddPodAsync("orders", 2);

        var data = new DataDirectory(_temp.Combine("cp"));
        Directory.CreateDirectory(data.PoliciesDirectory);
        File.Copy(Path.Combine(RepositoryRoot.Path, "samples", "policies", "orders.yaml"), Path.Combine(data.PoliciesDirectory, "orders.yaml"));
        var controlPlane = Start("control-plane", "meshguard-cp", PodNetwork.In(Node),
            "--data", data.Root, "--trust-domain", LocalMesh.TrustDomain, "--bind-address", PodNetwork.NodeAddress);
        await WaitForLineAsync(controlPlane, " webhook=");
        Start("outside-app", "meshguard-sample", PodNetwork.In(Node), "--name", "outside", "--address", PodNetwork.NodeAddress, "--port", "9090");
        Start("orders-app", "meshguard-sample", PodNetwork.In(OrdersPod), "--name", "orders", "--port", "8080");
        // A second app of the pod that listens on every address, IPv6 included, as a careless app does.
        Start("orders-any-address-app", "meshguard-sample", PodNetwork.In(OrdersPod), "--name", "orders-any-address", "--address", "::", "--port", AnyAddressPort.ToString(System.Globalization.CultureInfo.InvariantCulture));

        var tokens = new JoinTokenStore(data.Root, TimeProvider.System);
        // uid 1337 runs a copy in the test's own directory: the clone (and MESHGUARD_BIN with it) may live where
        // only root can read, as under /root.
        var proxy = _temp.Combine("bin", "meshguard-proxy");
        Directory.CreateDirectory(Path.GetDirectoryName(proxy)!);
        File.Copy(MeshBinaries.Of("meshguard-proxy"), proxy);
        File.SetUnixFileMode(proxy, (UnixFileMode)0b111_101_101);
        var sidecars = new List<MeshProcess>();
        foreach (var (pod, service, index) in new[] { (FrontendPod, "frontend", 1), (OrdersPod, "orders", 2) })
        {
            // What the injected init container does, before anything else runs in the pod.
            var (exit, output) = await PodNetwork.RunAsync(pod, null, proxy,
                "redirect", "install", "--proxy-uid", "1337", "--exclude-inbound-ports", "15000,15020");
            Assert.True(exit == 0, output);
            var state = _temp.Combine(pod);
            Directory.CreateDirectory(state);
            await ExternalProcess.RunAsync("chown", [$"{ProxyUid}:{ProxyUid}", state]);
            sidecars.Add(Start($"{service}-sidecar", proxy, PodNetwork.In(pod, ProxyUid),
                "--cp", $"https://{PodNetwork.NodeAddress}:15012",
                "--cp-bundle", data.TrustBundle,
                "--join-token", tokens.Create(SpiffeId.ForWorkload(LocalMesh.TrustDomain, "shop", service), TimeSpan.FromMinutes(5)),
                "--service", service, "--app-port", "8080", "--inbound-address", "0.0.0.0",
                "--advertise-address", $"{PodNetwork.AddressOf(index)}:15006", "--state-dir", state));
        }
        foreach (var sidecar in sidecars)
        {
            await WaitForLineAsync(sidecar, ", 2 services");
        }
    }

    private MeshProcess Start(string name, string executable, IReadOnlyList<string> launcher, params string[] arguments)
    {
        var process = MeshProcess.Start(name, executable, arguments, _temp.Combine("logs", name + ".log"), new Dictionary<string, string> { ["HOME"] = _temp.Path }, launcher);
        _processes.Add(process);
        return process;
    }

    private static async Task WaitForLineAsync(MeshProcess process, string text)
    {
        var seen = await Eventually.TrueAsync(() => process.HasExited || process.ReadLog().Contains(text, StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        Assert.True(seen && !process.HasExited, $"{process.Name} did not log '{text}':\n{process.ReadLog()}");
    }

    public async Task DisposeAsync()
    {
        foreach (var process in Enumerable.Reverse(_processes))
        {
            await process.DisposeAsync();
        }
        if (_network is not null)
        {
            await _network.DisposeAsync();
        }
        _temp.Dispose();
    }
}

public sealed class TransparentRedirectTests(PodNetworkFixture pods) : IClassFixture<PodNetworkFixture>
{
    private static IEnumerable<JsonElement> Flows(string directory, string direction) =>
        FlowLogReader.Records(directory).Where(r => r.Text("kind") == "flow" && r.Text("direction") == direction);

    [Fact]
    public async Task AppCallingAnotherPodByAddressIsCarriedThroughMutualTls()
    {
        var (status, body) = await PodNetwork.CurlAsync(pods.FrontendPod, PodNetworkFixture.AppUid, $"http://{pods.OrdersAddress}:{PodNetworkFixture.AppPort}/orders/7");

        Assert.Equal(200, status);
        using var echo = JsonDocument.Parse(body);
        Assert.Equal("orders", echo.RootElement.GetProperty("service").GetString());
        // The orders sidecar saw the frontend's SVID in the handshake and says so to its app.
        Assert.Contains("URI=spiffe://mesh.local/ns/shop/sa/frontend", echo.RootElement.GetProperty("x_forwarded_client_cert").GetString(), StringComparison.Ordinal);
        Assert.True(await Eventually.TrueAsync(() => Flows(pods.FlowDirectoryOf(pods.OrdersPod), "inbound").Any(r =>
            r.Text("path") == "/orders/7" && r.Text("decision") == "allow" && r.Text("source_id") == "spiffe://mesh.local/ns/shop/sa/frontend"
            && r.Text("tls_version") == "TLSv1.3")), "no inbound allow record for /orders/7 at the orders sidecar");
    }

    [Fact]
    public async Task RedirectedRequestTheDestinationDidNotDeclareIsRefused()
    {
        var (status, _) = await PodNetwork.CurlAsync(pods.FrontendPod, PodNetworkFixture.AppUid, $"http://{pods.OrdersAddress}:{PodNetworkFixture.AppPort}/admin");

        Assert.Equal(403, status);
        Assert.True(await Eventually.TrueAsync(() => Flows(pods.FlowDirectoryOf(pods.OrdersPod), "inbound").Any(r =>
            r.Text("path") == "/admin" && r.Text("decision") == "deny")), "no inbound deny record for /admin at the orders sidecar");
    }

    [Fact]
    public async Task PlaintextFromOutsideThePodNeverReachesTheApp()
    {
        // From the node, not through a sidecar: the orders pod's rules send it to the mTLS port, which wants a handshake.
        var (status, output) = await PodNetwork.CurlAsync(pods.Node, null, $"http://{pods.OrdersAddress}:{PodNetworkFixture.AppPort}/orders/7");

        Assert.True(status == 0, $"plaintext got an HTTP answer: {status} {output}");
        Assert.DoesNotContain("\"service\":\"orders\"", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PlaintextOverIpv6FromOutsideThePodNeverReachesTheApp()
    {
        // The app listens on [::]: without the ip6tables rules, this would reach it around the sidecar.
        var (status, output) = await PodNetwork.CurlAsync(pods.Node, null, "-g", $"http://[{PodNetwork.Address6Of(2)}]:{PodNetworkFixture.AnyAddressPort}/orders/7");

        Assert.True(status == 0, $"plaintext IPv6 got an HTTP answer: {status} {output}");
        Assert.DoesNotContain("orders-any-address", output, StringComparison.Ordinal);
        var (_, rules) = await PodNetwork.RunAsync(pods.OrdersPod, null, "ip6tables", "-t", "nat", "-S");
        Assert.Single(rules.Split('\n'), l => l.Trim() == "-A PREROUTING -p tcp -j MESHGUARD_INBOUND");
        // The same app over IPv4 from outside: refused the same way (the control case of the IPv4 rules).
        (status, output) = await PodNetwork.CurlAsync(pods.Node, null, $"http://{pods.OrdersAddress}:{PodNetworkFixture.AnyAddressPort}/orders/7");
        Assert.True(status == 0, $"plaintext IPv4 got an HTTP answer: {status} {output}");
    }

    [Fact]
    public async Task AddressOutsideTheMeshIsPassedThroughAndRecorded()
    {
        var (status, body) = await PodNetwork.CurlAsync(pods.FrontendPod, PodNetworkFixture.AppUid, $"http://{PodNetwork.NodeAddress}:{PodNetworkFixture.OutsidePort}/status");

        Assert.Equal(200, status);
        Assert.Contains("\"service\":\"outside\"", body, StringComparison.Ordinal);
        Assert.True(await Eventually.TrueAsync(() => Flows(pods.FlowDirectoryOf(pods.FrontendPod), "outbound").Any(r =>
            r.Text("dest_service") == "passthrough" && r.Text("dest_addr") == PodNetwork.NodeAddress && r.Text("decision") == "allow"
            && r.Text("path") == "/status" && r.GetProperty("status").GetInt32() == 200
            && r.GetProperty("dest_port").GetInt32() == PodNetworkFixture.OutsidePort)), "no passthrough record at the frontend sidecar");
    }

    [Fact]
    public async Task CallByServiceNameToAnAddressOutsideTheMeshStaysInTheMesh()
    {
        // As a call to a Service's cluster IP: the address is no pod's, the Host names the service.
        var (status, body) = await PodNetwork.CurlAsync(pods.FrontendPod, PodNetworkFixture.AppUid,
            "-H", $"Host: orders.shop.svc.cluster.local:{PodNetworkFixture.AppPort}", $"http://10.77.0.200:{PodNetworkFixture.AppPort}/orders/9");

        Assert.Equal(200, status);
        Assert.Contains("URI=spiffe://mesh.local/ns/shop/sa/frontend", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RedirectInstallRunTwiceLeavesOneSetOfRules()
    {
        var (exit, output) = await PodNetwork.RunAsync(pods.FrontendPod, null, MeshBinaries.Of("meshguard-proxy"),
            "redirect", "install", "--proxy-uid", "1337", "--exclude-inbound-ports", "15000,15020");
        Assert.True(exit == 0, output);

        var (_, rules) = await PodNetwork.RunAsync(pods.FrontendPod, null, "iptables", "-t", "nat", "-S");
        Assert.Single(rules.Split('\n'), l => l.Trim() == "-A OUTPUT -p tcp -j MESHGUARD_OUTPUT");
        Assert.Single(rules.Split('\n'), l => l.Trim() == "-A PREROUTING -p tcp -j MESHGUARD_INBOUND");
        Assert.Single(rules.Split('\n'), l => l.Trim() == "-A MESHGUARD_REDIRECT -p tcp -j REDIRECT --to-ports 15001");
        var (_, rules6) = await PodNetwork.RunAsync(pods.FrontendPod, null, "ip6tables", "-t", "nat", "-S");
        Assert.Single(rules6.Split('\n'), l => l.Trim() == "-A OUTPUT -p tcp -j MESHGUARD_OUTPUT");
        Assert.Single(rules6.Split('\n'), l => l.Trim() == "-A MESHGUARD_OUTPUT -d ::1/128 -j RETURN");
        var (status, _) = await PodNetwork.CurlAsync(pods.FrontendPod, PodNetworkFixture.AppUid, $"http://{pods.OrdersAddress}:{PodNetworkFixture.AppPort}/orders/8");
        Assert.Equal(200, status);
    }
}
