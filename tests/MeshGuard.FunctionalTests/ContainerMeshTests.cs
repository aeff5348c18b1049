using System.Text.Json;
using MeshGuard.ControlPlane.Common.Injection;
using MeshGuard.Ctl.Demo;
using MeshGuard.FlowLog;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// The images <c>./meshguard.sh images</c> built, run as a platform team runs them: the control plane and two pods
/// (init container, app, sidecar) under podman, from <see cref="ContainerMesh"/>. The apps call each other by name
/// with no proxy settings.
/// </summary>
public sealed class ContainerMeshFixture : IAsyncLifetime
{
    private readonly TempDirectory _temp = new();

    public ContainerMesh Mesh { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Mesh = new ContainerMesh(_temp.Combine("mesh"));
        await Mesh.StartAsync(Path.Combine(RepositoryRoot.Path, "samples", "policies"), ["frontend", "orders"], CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await Mesh.DisposeAsync();
        _temp.Dispose();
    }
}

[Trait("Subject", "Containers")]
public sealed class ContainerMeshTests(ContainerMeshFixture pods) : IClassFixture<ContainerMeshFixture>
{
    private ContainerMesh Mesh => pods.Mesh;

    private static IEnumerable<JsonElement> Flows(string directory, string direction) =>
        FlowLogReader.Records(directory).Where(r => r.Text("kind") == "flow" && r.Text("direction") == direction);

    [Fact]
    public async Task AnAppCallingAnotherServiceByNameIsCarriedThroughMutualTlsAndRecordedAsAllowed()
    {
        using var call = JsonDocument.Parse(await Mesh.CallAsync("frontend", "orders", "GET", "/orders/7", CancellationToken.None));

        Assert.Equal(200, call.RootElement.GetProperty("status").GetInt32());
        using var echo = JsonDocument.Parse(call.RootElement.GetProperty("body").GetString()!);
        Assert.Equal("orders", echo.RootElement.GetProperty("service").GetString());
        Assert.Contains("URI=spiffe://mesh.local/ns/shop/sa/frontend", echo.RootElement.GetProperty("x_forwarded_client_cert").GetString(), StringComparison.Ordinal);
        Assert.True(await Eventually.TrueAsync(() => Flows(Mesh.FlowDirectoryOf("orders"), "inbound").Any(r =>
            r.Text("path") == "/orders/7" && r.Text("decision") == "allow" && r.Text("source_id") == "spiffe://mesh.local/ns/shop/sa/frontend"
            && r.Text("tls_version") == "TLSv1.3")), "no inbound allow record for /orders/7 at the orders sidecar");
    }

    [Fact]
    public async Task ACallThePolicyDoesNotAllowIsRefusedAndRecordedAsDenied()
    {
        using var call = JsonDocument.Parse(await Mesh.CallAsync("frontend", "orders", "DELETE", "/orders/7", CancellationToken.None));

        Assert.Equal(403, call.RootElement.GetProperty("status").GetInt32());
        Assert.True(await Eventually.TrueAsync(() => Flows(Mesh.FlowDirectoryOf("orders"), "inbound").Any(r =>
            r.Text("path") == "/orders/7" && r.Text("method") == "DELETE" && r.Text("decision") == "deny")), "no inbound deny record at the orders sidecar");
    }

    [Fact]
    public async Task FlowLogsWrittenInContainersVerifyWithTheMeshctlImage()
    {
        using (JsonDocument.Parse(await Mesh.CallAsync("frontend", "orders", "GET", "/orders/8", CancellationToken.None)))
        {
        }
        Assert.True(await Eventually.TrueAsync(() => Flows(Mesh.FlowDirectoryOf("orders"), "inbound").Any(r => r.Text("path") == "/orders/8")));

        var (exit, output) = await Mesh.VerifyFlowsAsync("orders", CancellationToken.None);

        Assert.True(exit == 0, output);
        Assert.Contains("OK:", output, StringComparison.Ordinal);
        Assert.Contains("workload spiffe://mesh.local/ns/shop/sa/orders", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheSidecarRunsAsUid1337WithNoCapabilitiesOnAReadOnlyRootWithoutAShell()
    {
        var sidecar = Mesh.ContainerOf("orders", "sidecar");
        var status = await ContainerMesh.ProcessStatusAsync(sidecar, CancellationToken.None);
        string Field(string name) => status.Split('\n').Single(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..].Trim();

        Assert.Equal(["1337", "1337", "1337", "1337"], Field("Uid").Split('\t', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("0000000000000000", Field("CapEff"));
        Assert.Equal("0000000000000000", Field("CapPrm"));
        Assert.Equal("1", Field("NoNewPrivs"));
        Assert.Equal("true", (await ContainerMesh.InspectAsync(sidecar, "{{.HostConfig.ReadonlyRootfs}}", CancellationToken.None)).Output.Trim());
        // Distroless: the image has no shell to start.
        var (exit, output) = await ExternalProcess.RunAsync("podman", ["run", "--rm", "--entrypoint", "/bin/sh", MeshGuardImages.Proxy, "-c", "true"]);
        Assert.NotEqual(0, exit);
        Assert.Contains("/bin/sh", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PlaintextFromOutsideThePodNeverReachesTheApp()
    {
        // From the network, not through a sidecar: the orders pod's rules send port 8080 to the mTLS port.
        var (exit, output) = await ExternalProcess.RunAsync("curl", ["-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", $"http://{Mesh.AddressOf("orders")}:{ContainerMesh.AppPort}/orders/7"]);

        Assert.True(exit != 0 || output.Trim() == "000", $"plaintext got an HTTP answer: {output}");
    }
}
