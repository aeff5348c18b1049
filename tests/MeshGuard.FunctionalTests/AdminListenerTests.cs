using System.Net;
using System.Net.Security;
using System.Security.Authentication;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Each admin surface answers on its own listener only, decided by the port a connection arrived on, and only under a
/// loopback Host: a client of the control plane's bootstrap or gRPC port, or a mesh peer at a sidecar's inbound port,
/// that names the admin address in its Host header reaches nothing; neither does a page of another site (DNS rebinding).
/// </summary>
[Collection(nameof(MeshCollection))]
public sealed class AdminListenerTests(MeshFixture mesh)
{
    private static async Task<HttpStatusCode?> GetAsync(int port, string path, string host, bool tls = false, Version? version = null,
        System.Security.Cryptography.X509Certificates.X509Certificate2? certificate = null, System.Security.Cryptography.X509Certificates.X509Certificate2Collection? chain = null)
    {
        using var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                EnabledSslProtocols = SslProtocols.Tls13,
                ClientCertificateContext = certificate is null ? null : SslStreamCertificateContext.Create(certificate, chain ?? [], offline: true),
                RemoteCertificateValidationCallback = static (_, _, _, _) => true,
            },
        };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"{(tls ? "https" : "http")}://127.0.0.1:{port}{path}"))
        {
            Version = version ?? HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.Host = host;
        try
        {
            using var response = await client.SendAsync(request);
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    [Theory]
    [InlineData("/readyz")]
    [InlineData("/metrics")]
    [InlineData("/healthz")]
    [InlineData("/console/")]
    public async Task TheControlPlanesAdminEndpointsAreNotServedOnItsBootstrapOrGrpcPortWhateverTheHost(string path)
    {
        var cp = mesh.Mesh.ControlPlane!;
        var adminHost = $"127.0.0.1:{cp.AdminPort}";
        Assert.Equal(HttpStatusCode.NotFound, await GetAsync(cp.BootstrapPort, path, adminHost, tls: true));
        var leaf = mesh.RealCa.IssueLeaf("spiffe://mesh.local/ns/shop/sa/checkout");
        var atGrpc = await GetAsync(cp.GrpcPort, path, adminHost, tls: true, version: HttpVersion.Version20, certificate: leaf, chain: mesh.RealCa.Intermediates);
        Assert.Equal(HttpStatusCode.NotFound, atGrpc);
        // On its own port it answers (the console asks for a session first).
        Assert.Contains(await GetAsync(cp.AdminPort, path, adminHost), new HttpStatusCode?[] { HttpStatusCode.OK, HttpStatusCode.Unauthorized });
    }

    [Theory]
    [InlineData("/readyz", "evil.example:{0}", HttpStatusCode.MisdirectedRequest)]
    [InlineData("/console/", "evil.example:{0}", HttpStatusCode.MisdirectedRequest)]
    [InlineData("/metrics", "127.0.0.1:1", HttpStatusCode.NotFound)]
    public async Task TheControlPlanesAdminEndpointsRefuseAForeignHost(string path, string host, HttpStatusCode expected)
    {
        var cp = mesh.Mesh.ControlPlane!;
        Assert.Equal(expected, await GetAsync(cp.AdminPort, path, string.Format(System.Globalization.CultureInfo.InvariantCulture, host, cp.AdminPort)));
    }

    [Theory]
    [InlineData("/config")]
    [InlineData("/certs")]
    [InlineData("/decisions")]
    [InlineData("/ready")]
    public async Task ASidecarsAdminEndpointsRefuseAForeignHostAndAnswerTheLoopbackOne(string path)
    {
        var admin = mesh.Orders.AdminPort;
        Assert.Equal(HttpStatusCode.MisdirectedRequest, await GetAsync(admin, path, $"rebound.example:{admin}"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(admin, path, $"127.0.0.1:{admin}"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(admin, path, $"localhost:{admin}"));
    }

    [Fact]
    public async Task ASidecarsMetricsRefuseAForeignHost()
    {
        var metrics = mesh.Orders.MetricsPort;
        Assert.Equal(HttpStatusCode.MisdirectedRequest, await GetAsync(metrics, "/metrics", $"rebound.example:{metrics}"));
        Assert.Equal(HttpStatusCode.OK, await GetAsync(metrics, "/metrics", $"127.0.0.1:{metrics}"));
    }

    [Fact]
    public async Task AMeshPeerNamingTheAdminAddressAtTheInboundPortReachesTheAppNotTheAdminEndpoints()
    {
        var leaf = mesh.RealCa.IssueLeaf("spiffe://mesh.local/ns/shop/sa/checkout");
        var status = await GetAsync(mesh.Orders.InboundPort, "/certs-via-inbound", $"127.0.0.1:{mesh.Orders.AdminPort}", tls: true, certificate: leaf, chain: mesh.RealCa.Intermediates);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains(mesh.OrdersApp.Requests, r => r.Path == "/certs-via-inbound");
    }
}
