using System.Net;
using System.Text.Json.Nodes;
using MeshGuard.Contracts.DataDir;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Two control-plane replicas as a cluster runs them: one CA (copied, as the meshguard-ca Secret gives both),
/// AccessPolicies and the service table both from the Kubernetes API (replayed here). A sidecar streaming from
/// one replica reaches a service whose sidecar attested at the other.
/// </summary>
public sealed class ControlPlaneReplicasTests : MeshTest
{
    private const string NoPods = """{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"100"},"items":[]}""";
    private readonly KubernetesApiReplay _api = new();
    private readonly TempDirectory _files = new();

    /// <summary>The recorded orders or frontend pod, at 127.0.0.1 and the given sidecar inbound port.</summary>
    private static string PodEvent(int index, string name, int inboundPort, int version)
    {
        var list = JsonNode.Parse(KubernetesApiReplay.Recorded("pods-list.json"))!;
        var pod = list["items"]![index]!.DeepClone();
        pod["metadata"]!["name"] = name;
        pod["metadata"]!["resourceVersion"] = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
        pod["status"]!["podIP"] = "127.0.0.1";
        var proxy = pod["spec"]!["containers"]!.AsArray().Single(c => (string?)c!["name"] == "meshguard-proxy")!;
        proxy["ports"]![0]!["containerPort"] = inboundPort;
        return new JsonObject { ["type"] = "ADDED", ["object"] = pod }.ToJsonString();
    }

    [Fact]
    public async Task ASidecarOfOneReplicaReachesAServiceThatAttestedAtTheOther()
    {
        _api.AccessPolicies.Lists.Enqueue(KubernetesApiReplay.Recorded("accesspolicies-list-page1.json"));
        _api.Pods.Lists.Enqueue(NoPods);
        await _api.StartAsync();
        var kubeconfig = _api.WriteKubeConfig(_files.Combine("kubeconfig"));
        string[] fromCluster = ["--policy-source", "kubernetes", "--endpoint-source", "kubernetes", "--kubeconfig", kubeconfig];
        var replicaA = await Mesh.StartControlPlaneAsync(extraArguments: fromCluster);

        // Replica B: the same CA, its own data directory and ports.
        var dataB = new DataDirectory(_files.Combine("cp-b"));
        Directory.CreateDirectory(dataB.CaDirectory);
        foreach (var file in Directory.GetFiles(Mesh.Data.CaDirectory))
        {
            var copy = Path.Combine(dataB.CaDirectory, Path.GetFileName(file));
            File.Copy(file, copy);
            File.SetUnixFileMode(copy, File.GetUnixFileMode(file));
        }
        var ports = LocalMesh.FreePorts(4);
        var processB = Mesh.Track(MeshProcess.Start("control-plane-b", "meshguard-cp",
            ["--data", dataB.Root, "--trust-domain", LocalMesh.TrustDomain, "--bootstrap-port", $"{ports[0]}", "--grpc-port", $"{ports[1]}",
             "--admin-port", $"{ports[2]}", "--webhook-port", $"{ports[3]}", .. fromCluster],
            _files.Combine("cp-b.log")));
        await Mesh.WaitForAsync(processB, new Uri($"http://127.0.0.1:{ports[2]}/healthz"), CancellationToken.None);
        var replicaB = new ControlPlaneEndpoints(dataB.Root, dataB.TrustBundle, ports[0], ports[1], ports[2], ports[3]);
        Assert.Equal(await File.ReadAllTextAsync(replicaA.BundleFile), await File.ReadAllTextAsync(replicaB.BundleFile));

        var ordersApp = await StartAppAsync("orders");
        var orders = await Mesh.StartSidecarAsync("orders", ordersApp.Port, controlPlane: replicaB,
            joinToken: new JoinTokenStore(dataB.Root, TimeProvider.System).Create(LocalMesh.IdentityOf("orders"), TimeSpan.FromMinutes(5)));
        var frontend = await Mesh.StartSidecarAsync("frontend", (await StartAppAsync("frontend")).Port, controlPlane: replicaA);

        // The pods appear in the API: both replicas learn them from there, not from who attested where.
        Assert.True(await Eventually.TrueAsync(() => _api.Pods.WatchVersions.Count >= 2), "both replicas should watch pods");
        await _api.Pods.SendAsync(PodEvent(0, "orders-7d9c5b6f4-x2k8p", orders.InboundPort, 200));
        await _api.Pods.SendAsync(PodEvent(2, "frontend-5f8d7c9b2-m7n3k", frontend.InboundPort, 201));
        await SidecarAdmin.WaitForServicesAsync(frontend, 2);
        await SidecarAdmin.WaitForServicesAsync(orders, 2);

        using var client = SidecarAdmin.ThroughOutbound(frontend);
        using var response = await client.GetAsync(new Uri("http://orders/orders/1"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(ordersApp.Requests, r => r.Path == "/orders/1" && r.Headers["x-forwarded-client-cert"].Contains("URI=spiffe://mesh.local/ns/shop/sa/frontend", StringComparison.Ordinal));
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _api.DisposeAsync();
        _files.Dispose();
    }
}
