using System.Net;
using System.Net.Http.Json;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using MeshGuard.Contracts;
using MeshGuard.Contracts.V1;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>Join tokens, the bootstrap endpoint's refusals, and renewal bound to the caller's own identity.</summary>
[Collection(nameof(MeshCollection))]
[Trait("Subject", "ControlPlane")]
public sealed class AttestationTests(MeshFixture mesh)
{
    private static readonly SpiffeId Inventory = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/inventory");

    private HttpClient BootstrapClient() => FunctionalTests.BootstrapClient.For(mesh.Mesh.ControlPlane!.BootstrapPort, mesh.Bundle);

    private static string Csr(SpiffeId? id = null)
    {
        using var key = SvidKey.CreateKey();
        return id is null
            ? new CertificateRequest("CN=x", key, System.Security.Cryptography.HashAlgorithmName.SHA256).CreateSigningRequestPem()
            : SvidKey.CreateSigningRequestPem(key, id);
    }

    private async Task<(HttpStatusCode Status, string Body)> AttestAsync(string? token, string? csr, string service = "inventory", string address = "127.0.0.1:9")
    {
        using var client = BootstrapClient();
        using var response = await client.PostAsJsonAsync(Bootstrap.AttestPath, new AttestRequest(token, csr, service, address), ContractsJsonContext.Default.AttestRequest);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AJoinTokenWorksOnceAndTheSecondSidecarIsToldItWasUsed()
    {
        var token = mesh.Mesh.CreateJoinToken(Inventory);
        var (status, body) = await AttestAsync(token, Csr());
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("spiffe://mesh.local/ns/shop/sa/inventory", body, StringComparison.Ordinal);

        // A real sidecar started with the spent token refuses to start and says why.
        var second = await mesh.Mesh.StartSidecarAsync("inventory", mesh.OrdersApp.Port, joinToken: token, waitReady: false);
        Assert.True(await Eventually.TrueAsync(() => second.Sidecar!.HasExited, TimeSpan.FromSeconds(30)), "the sidecar kept running with a spent token");
        Assert.Equal(1, second.Sidecar!.ExitCode);
        Assert.True(await Eventually.TrueAsync(() => second.Sidecar.ReadLog().Contains("join token was already used", StringComparison.Ordinal)),
            second.Sidecar.ReadLog());
    }

    [Fact]
    public async Task TheBootstrapPortNamesTheGrpcPortSoASidecarNeedsOnlyTheBootstrapAddress()
    {
        using var client = BootstrapClient();
        var info = await client.GetFromJsonAsync(Bootstrap.InfoPath, ContractsJsonContext.Default.BootstrapInfo);

        Assert.Equal(mesh.Mesh.ControlPlane!.GrpcPort, info!.GrpcPort);
        Assert.NotEqual(15010, info.GrpcPort);
        // The fixture's sidecars were given --cp alone: they found that port (the config came over it) without guessing.
        Assert.DoesNotContain("did not name its gRPC port", mesh.Orders.Sidecar!.ReadLog(), StringComparison.Ordinal);
        using var admin = new HttpClient();
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(new Uri($"http://127.0.0.1:{mesh.Orders.AdminPort}/ready"))).StatusCode);
    }

    [Fact]
    public async Task ASidecarNamesTheFlagOfAPortAnotherProcessHoldsBeforeSpendingItsJoinToken()
    {
        using var temp = new TempDirectory();
        var ports = MeshGuard.Ctl.Demo.LocalMesh.FreePorts(3);
        using var holder = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        var held = ((IPEndPoint)holder.LocalEndpoint).Port;
        string Text(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var token = mesh.Mesh.CreateJoinToken(Inventory);

        var (exit, output) = await Cli.RunAsync("meshguard-proxy",
            "--cp", $"https://127.0.0.1:{mesh.Mesh.ControlPlane!.BootstrapPort}", "--cp-bundle", mesh.Mesh.ControlPlane.BundleFile,
            "--join-token", token, "--service", "inventory", "--app-port", Text(mesh.OrdersApp.Port),
            "--inbound-port", Text(ports[0]), "--outbound-port", Text(ports[1]), "--admin-port", Text(ports[2]), "--metrics-port", Text(held),
            "--state-dir", temp.Path);

        Assert.Equal(1, exit);
        Assert.Equal($"meshguard-proxy: --metrics-port {held}: 127.0.0.1:{held} is in use by another process", output.Trim().Split('\n')[^1]);
        // Refused before attesting: the one-time token is still good for the start that follows.
        Assert.Equal(HttpStatusCode.OK, (await AttestAsync(token, Csr())).Status);
    }

    [Fact]
    public async Task AnExpiredTokenIsRefusedAsExpired()
    {
        var token = mesh.Mesh.CreateJoinToken(Inventory, TimeSpan.FromMilliseconds(1));
        await Task.Delay(50);
        var (status, body) = await AttestAsync(token, Csr());
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Contains("join token has expired", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnUnknownTokenIsRefusedAsUnknown()
    {
        var (status, body) = await AttestAsync("mgjt_made-up", Csr());
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Contains("join token is unknown", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ACsrForAnotherIdentityIsRefusedAndTheTokenStaysUsable()
    {
        var token = mesh.Mesh.CreateJoinToken(Inventory);
        var (status, body) = await AttestAsync(token, Csr(SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/admin")));
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Contains("CSR asks for spiffe://mesh.local/ns/shop/sa/admin but the join token is bound to spiffe://mesh.local/ns/shop/sa/inventory", body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await AttestAsync(token, Csr(Inventory))).Status);
    }

    [Theory]
    [InlineData("not a csr", "CSR is malformed")]
    [InlineData(null, "CSR is missing")]
    public async Task AMalformedCsrIsRefusedWith400AndTheTokenStaysUsable(string? csr, string reason)
    {
        var token = mesh.Mesh.CreateJoinToken(Inventory);
        var (status, body) = await AttestAsync(token, csr);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(reason, body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await AttestAsync(token, Csr())).Status);
    }

    [Theory]
    [InlineData("Inventory!", "127.0.0.1:9", "must be a DNS label")]
    [InlineData("inventory", "somewhere", "must be ip:port")]
    public async Task ABadRegistrationIsRefusedWith400(string service, string address, string reason)
    {
        var (status, body) = await AttestAsync(mesh.Mesh.CreateJoinToken(Inventory), Csr(), service, address);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(reason, body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ABodyThatIsNotJsonIsRefusedWith400()
    {
        using var client = BootstrapClient();
        using var response = await client.PostAsync(Bootstrap.AttestPath, new StringContent("{not json", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("not valid JSON", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RenewalIssuesTheCallersOwnIdentityOnly()
    {
        using var channel = mesh.ControlPlaneChannel(mesh.RealCa.IssueLeaf(Inventory.ToString()));
        var client = new Identity.IdentityClient(channel);
        var renewed = await client.RenewAsync(new RenewRequest { CsrPem = Csr(Inventory) });
        Assert.Equal(Inventory.ToString(), renewed.SpiffeId);

        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await client.RenewAsync(new RenewRequest { CsrPem = Csr(SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/admin")) }));
        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);
    }

    [Fact]
    public async Task RenewalWithAnExpiredSvidFailsAtTheHandshake()
    {
        var now = DateTimeOffset.UtcNow;
        var expired = mesh.RealCa.IssueLeaf(new MeshGuard.Tests.Common.TestCa.LeafOptions { Uris = [Inventory.ToString()], NotAfter = now.AddSeconds(-2) });
        using var channel = mesh.ControlPlaneChannel(expired);
        var client = new Identity.IdentityClient(channel);
        var error = await Assert.ThrowsAsync<RpcException>(async () => await client.RenewAsync(new RenewRequest { CsrPem = Csr(Inventory) }));
        // Under TLS 1.3 the client finishes its side of the handshake before the server has refused its
        // certificate, so the refusal reaches the call either as a failed connection (Unavailable) or as the
        // connection torn down under the first request (Internal); never as an answer from the service.
        Assert.Contains(error.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
    }
}
