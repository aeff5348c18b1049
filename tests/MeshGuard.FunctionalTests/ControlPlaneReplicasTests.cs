using System.Net;
using System.Text.Json.Nodes;
using MeshGuard.ControlPlane.Common.DataDir;
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

    private static readonly TimeSpan SvidTtl = TimeSpan.FromSeconds(10);

    /// <summary>Replicas A (the mesh's control plane) and B: one CA, the same replayed API, each its own data and ports.</summary>
    private async Task<(ControlPlaneEndpoints A, ControlPlaneEndpoints B)> StartReplicasAsync()
    {
        _api.AccessPolicies.Lists.Enqueue(KubernetesApiReplay.Recorded("accesspolicies-list-page1.json"));
        _api.Pods.Lists.Enqueue(NoPods);
        _api.ConfigMaps.Lists.Enqueue(KubernetesApiReplay.Recorded("configmaps-revocations-list.json"));
        await _api.StartAsync();
        var kubeconfig = _api.WriteKubeConfig(_files.Combine("kubeconfig"));
        string[] fromCluster = ["--policy-source", "kubernetes", "--endpoint-source", "kubernetes", "--revocation-source", "kubernetes", "--kubeconfig", kubeconfig];
        var replicaA = await Mesh.StartControlPlaneAsync(svidTtl: SvidTtl, extraArguments: fromCluster);

        var dataB = new DataDirectory(_files.Combine("cp-b"));
        Directory.CreateDirectory(dataB.CaDirectory);
        foreach (var file in Directory.GetFiles(Mesh.Data.CaDirectory))
        {
            var copy = Path.Combine(dataB.CaDirectory, Path.GetFileName(file));
            File.Copy(file, copy);
            File.SetUnixFileMode(copy, File.GetUnixFileMode(file));
        }
        var replicaB = await Mesh.StartControlPlaneAsync(svidTtl: SvidTtl, extraArguments: fromCluster, replica: ("control-plane-b", dataB));
        Assert.Equal(await File.ReadAllTextAsync(replicaA.BundleFile), await File.ReadAllTextAsync(replicaB.BundleFile));
        return (replicaA, replicaB);
    }

    /// <summary>The two services' pods appear in the API; both replicas learn them from there.</summary>
    private async Task PublishPodsAsync(MeshService orders, MeshService frontend)
    {
        Assert.True(await Eventually.TrueAsync(() => _api.Pods.WatchVersions.Count >= 2), "both replicas should watch pods");
        await _api.Pods.SendAsync(PodEvent(0, "orders-7d9c5b6f4-x2k8p", orders.InboundPort, 200));
        await _api.Pods.SendAsync(PodEvent(2, "frontend-5f8d7c9b2-m7n3k", frontend.InboundPort, 201));
        await SidecarAdmin.WaitForServicesAsync(frontend, 2);
        await SidecarAdmin.WaitForServicesAsync(orders, 2);
    }

    [Fact]
    public async Task ASidecarOfOneReplicaReachesAServiceThatAttestedAtTheOther()
    {
        var (replicaA, replicaB) = await StartReplicasAsync();
        var ordersApp = await StartAppAsync("orders");
        var orders = await Mesh.StartSidecarAsync("orders", ordersApp.Port, controlPlanes: [replicaB],
            joinToken: new JoinTokenStore(replicaB.DataDirectory, TimeProvider.System).Create(LocalMesh.IdentityOf("orders"), TimeSpan.FromMinutes(5)));
        var frontend = await Mesh.StartSidecarAsync("frontend", (await StartAppAsync("frontend")).Port, controlPlanes: [replicaA]);
        await PublishPodsAsync(orders, frontend);

        using var client = SidecarAdmin.ThroughOutbound(frontend);
        using var response = await client.GetAsync(new Uri("http://orders/orders/1"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(ordersApp.Requests, r => r.Path == "/orders/1" && r.Headers["x-forwarded-client-cert"].Contains("URI=spiffe://mesh.local/ns/shop/sa/frontend", StringComparison.Ordinal));

        // The revocation list is one ConfigMap for both replicas: frontend revoked there is refused by orders,
        // whose sidecar streams from the other replica.
        var revocations = JsonNode.Parse(KubernetesApiReplay.Recorded("configmaps-revocations-list.json"))!["items"]![0]!.DeepClone();
        revocations["data"]!["revocations.txt"] = "spiffe://mesh.local/ns/shop/sa/frontend\n";
        revocations["metadata"]!["resourceVersion"] = "60500";
        await _api.ConfigMaps.SendAsync(new JsonObject { ["type"] = "MODIFIED", ["object"] = revocations }.ToJsonString());
        // A call in flight when orders closes frontend's connections is cut off mid-answer: that tells nothing
        // either way, so the next call asks again.
        Assert.True(await Eventually.TrueAsync(() =>
        {
            try
            {
                using var refused = client.GetAsync(new Uri("http://orders/orders/2")).GetAwaiter().GetResult();
                return refused.StatusCode != HttpStatusCode.OK;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(10)), "orders still let the revoked frontend in");
        using (var after = await client.GetAsync(new Uri("http://orders/orders/3")))
        {
            Assert.NotEqual(HttpStatusCode.OK, after.StatusCode);
        }
        Assert.DoesNotContain(ordersApp.Requests, r => r.Path == "/orders/3");
    }

    [Fact]
    public async Task LosingTheReplicaSidecarsStreamFromFailsNoRequestAndTheyRenewAtTheOther()
    {
        var (replicaA, replicaB) = await StartReplicasAsync();
        var ordersApp = await StartAppAsync("orders");
        var orders = await Mesh.StartSidecarAsync("orders", ordersApp.Port, controlPlanes: [replicaA, replicaB]);
        var frontend = await Mesh.StartSidecarAsync("frontend", (await StartAppAsync("frontend")).Port, controlPlanes: [replicaA, replicaB]);
        await PublishPodsAsync(orders, frontend);
        using var client = SidecarAdmin.ThroughOutbound(frontend);
        await using var load = SteadyLoad.Start(client, n => new HttpRequestMessage(HttpMethod.Get, $"http://orders/orders/{n}"), workers: 2);
        await load.RunForAsync(100);
        Mesh.Processes[0].Kill();

        await ReplicaFailover.StreamsMovedAsync(replicaB, orders, frontend);
        // The next renewal of each goes to replica B.
        await ReplicaFailover.RenewalsMovedAsync(replicaB, SvidTtl, orders, frontend);
        await load.RunForAsync(100);
        await load.StopAsync();

        Assert.Empty(load.Failures);
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _api.DisposeAsync();
        _files.Dispose();
    }
}
