using System.Net;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// meshguard-cp with <c>--policy-source kubernetes --kubeconfig</c>: AccessPolicy objects from the Kubernetes API
/// (its responses replayed by a local server, since no API server runs here) are what the sidecars enforce, and a
/// watch event changes what they enforce.
/// </summary>
[Trait("Subject", "ControlPlane")]
public sealed class ClusterPolicySourceTests : MeshTest
{
    private readonly KubernetesApiReplay _api = new();
    private readonly TempDirectory _files = new();

    [Fact]
    public async Task PoliciesListedFromTheApiAreEnforcedAndADeletedOneStopsAllowing()
    {
        _api.AccessPolicies.Lists.Enqueue(KubernetesApiReplay.Recorded("accesspolicies-list-page1.json"));
        await _api.StartAsync();
        await Mesh.StartControlPlaneAsync(extraArguments: ["--policy-source", "kubernetes", "--kubeconfig", _api.WriteKubeConfig(_files.Combine("kubeconfig"))]);
        var ordersApp = await StartAppAsync("orders");
        await Mesh.StartSidecarAsync("orders", ordersApp.Port);
        var frontend = await Mesh.StartSidecarAsync("frontend", (await StartAppAsync("frontend")).Port);
        await SidecarAdmin.WaitForServicesAsync(frontend, 2);
        using var client = SidecarAdmin.ThroughOutbound(frontend);

        // orders-callers (from the API) lets frontend GET /orders/*; nothing declares /admin.
        using (var allowed = await client.GetAsync(new Uri("http://orders/orders/1")))
        {
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        }
        using (var undeclared = await client.GetAsync(new Uri("http://orders/admin")))
        {
            Assert.Equal(HttpStatusCode.Forbidden, undeclared.StatusCode);
        }

        // The orders team deletes its policy: the default deny takes over.
        Assert.True(await Eventually.TrueAsync(() => _api.AccessPolicies.WatchVersions.Count == 1), "the control plane never watched");
        var deleted = KubernetesApiReplay.Recorded("accesspolicies-list-page1.json");
        using var list = System.Text.Json.JsonDocument.Parse(deleted);
        // One line: a watch stream is newline-delimited JSON.
        var ordersCallers = System.Text.Json.JsonSerializer.Serialize(list.RootElement.GetProperty("items")[0]).Replace("\"48211\"", "\"48400\"", StringComparison.Ordinal);
        await _api.AccessPolicies.SendAsync($$"""{"type":"DELETED","object":{{ordersCallers}}}""");
        var denied = await Eventually.TrueAsync(() =>
        {
            using var response = client.GetAsync(new Uri("http://orders/orders/2")).GetAwaiter().GetResult();
            return response.StatusCode == HttpStatusCode.Forbidden;
        }, TimeSpan.FromSeconds(10));
        Assert.True(denied, "the deleted policy still let frontend in");
        using (var after = await client.GetAsync(new Uri("http://orders/orders/3")))
        {
            Assert.Equal(HttpStatusCode.Forbidden, after.StatusCode);
        }
        Assert.DoesNotContain(ordersApp.Requests, r => r.Path == "/orders/3");
    }

    [Fact]
    public async Task AnUnreachableApiServerIsNamedWhenTheControlPlaneGivesUp()
    {
        var ports = LocalMesh.FreePorts(5);
        var kubeconfig = _files.Combine("kubeconfig");
        await File.WriteAllTextAsync(kubeconfig, $"""
            apiVersion: v1
            kind: Config
            clusters:
              - name: gone
                cluster:
                  server: "http://127.0.0.1:{ports[4]}"
            users:
              - name: cp
                user:
                  token: t
            contexts:
              - name: gone
                context:
                  cluster: gone
                  user: cp
            current-context: gone
            """);
        var process = Mesh.Track(MeshProcess.Start("control-plane-no-api", "meshguard-cp",
            ["--data", _files.Combine("cp"), "--bootstrap-port", $"{ports[0]}", "--grpc-port", $"{ports[1]}", "--admin-port", $"{ports[2]}", "--webhook-port", $"{ports[3]}",
             "--policy-source", "kubernetes", "--kubeconfig", kubeconfig],
            _files.Combine("cp.log")));

        // Until the first list, nothing listens: no sidecar can be handed an empty policy set.
        Assert.True(await Eventually.TrueAsync(() => process.ReadLog().Contains("list or watch failed", StringComparison.Ordinal), TimeSpan.FromSeconds(15)), process.ReadLog());
        using var probe = new HttpClient();
        await Assert.ThrowsAsync<HttpRequestException>(() => probe.GetAsync(new Uri($"http://127.0.0.1:{ports[2]}/healthz")));
        Assert.Contains($"127.0.0.1:{ports[4]}", process.ReadLog(), StringComparison.Ordinal);
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _api.DisposeAsync();
        _files.Dispose();
    }
}
