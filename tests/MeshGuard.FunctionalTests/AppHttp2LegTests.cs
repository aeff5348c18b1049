using System.Net;
using System.Net.Sockets;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// The inbound sidecar's hand-written HTTP/2 leg to an app that speaks cleartext HTTP/2 (prior knowledge, as gRPC
/// services do): what it sends (the canonical target, the verified caller, never a field only a sidecar may set),
/// what it carries both ways (a large upload; trailers), and what the caller learns when the app fails it (a reset
/// stream is a 502, an app not listening a 503).
/// </summary>
public sealed class AppHttp2LegTests(AppHttp2LegTests.Mesh shared) : IClassFixture<AppHttp2LegTests.Mesh>
{
    private const string Caller = "spiffe://mesh.local/ns/shop/sa/frontend";

    /// <summary>One mesh for the class: "orders" serves HTTP/2 only; nothing listens at "payments"' app port. No test changes it.</summary>
    public sealed class Mesh : IAsyncLifetime
    {
        private readonly TempDirectory _temp = new();
        private LocalMesh _mesh = null!;
        private RecordingApp _frontendApp = null!;

        public RecordingApp OrdersApp { get; private set; } = null!;

        public MeshService Orders { get; private set; } = null!;

        public MeshService Frontend { get; private set; } = null!;

        public TestCa Ca { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            MeshBinaries.Ensure();
            _mesh = new LocalMesh(_temp.Path);
            await _mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
            var data = _mesh.Data;
            Ca = TestCa.FromFiles(LocalMesh.TrustDomain, data.RootCertificate, data.RootKey, data.IntermediateCertificate, data.IntermediateKey);
            OrdersApp = await RecordingApp.StartAsync("orders", HttpProtocols.Http2);
            _frontendApp = await RecordingApp.StartAsync("frontend");
            Orders = await _mesh.StartSidecarAsync("orders", OrdersApp.Port, extraArguments: ["--app-protocol", "http2"]);
            await _mesh.StartSidecarAsync("payments", ClosedPort(), extraArguments: ["--app-protocol", "http2"]);
            Frontend = await _mesh.StartSidecarAsync("frontend", _frontendApp.Port);
            await SidecarAdmin.WaitForServicesAsync(Frontend, 3);
        }

        public async Task DisposeAsync()
        {
            await _mesh.DisposeAsync();
            await OrdersApp.DisposeAsync();
            await _frontendApp.DisposeAsync();
            _temp.Dispose();
        }

        /// <summary>A loopback port nothing listens at (taken and given back).</summary>
        private static int ClosedPort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
    }

    private HttpClient Http2Caller() => new(SidecarAdmin.RedirectedToOutbound(shared.Frontend))
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(15),
    };

    [Fact]
    public async Task AMeshPeersRequestReachesTheHttp2AppAtItsCanonicalTargetWithTheVerifiedCallerAndNoForgedFields()
    {
        await using var peer = await RawConnection.OpenTlsAsync(shared.Orders.InboundPort, shared.Ca.IssueLeaf(Caller), shared.Ca.Intermediates);
        await peer.SendAsync("GET /view/./a/../b?x=/../y HTTP/1.1\r\nHost: orders\r\nConnection: close, x-forwarded-client-cert\r\n" +
            "x-forwarded-client-cert: By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/kube-system/sa/admin\r\n" +
            "x-meshguard-caller: spiffe://mesh.local/ns/kube-system/sa/admin\r\nx-kept: yes\r\n\r\n");
        var (answer, _) = await peer.ReadAsync(TimeSpan.FromSeconds(10));
        Assert.StartsWith("HTTP/1.1 200", answer, StringComparison.Ordinal);
        var seen = Assert.Single(shared.OrdersApp.Requests, r => r.Path.StartsWith("/view/", StringComparison.Ordinal));
        Assert.Equal("HTTP/2", seen.Protocol);
        Assert.Equal("/view/b?x=/../y", seen.RawTarget);
        Assert.Equal("orders", seen.Headers["Host"]);
        Assert.Equal($"By={shared.Orders.Identity};URI={Caller}", seen.Headers["x-forwarded-client-cert"]);
        Assert.DoesNotContain(seen.Headers.Keys, name => name.StartsWith("x-meshguard-", StringComparison.OrdinalIgnoreCase));
        Assert.Equal("yes", seen.Headers["x-kept"]);
    }

    [Fact]
    public async Task FieldsACallerNamesInConnectionStopAtTheSidecarItSentThemTo()
    {
        // A mesh peer speaking HTTP/1.1 to the inbound port, and an app speaking HTTP/1.1 to its outbound port: each
        // names a field hop-by-hop beside close (Kestrel's HTTP/1.1 collection kept only "close" of such a header).
        await using (var peer = await RawConnection.OpenTlsAsync(shared.Orders.InboundPort, shared.Ca.IssueLeaf(Caller), shared.Ca.Intermediates))
        {
            await peer.SendAsync("GET /named/peer HTTP/1.1\r\nHost: orders\r\nConnection: x-hop, close\r\nx-hop: peer\r\nx-kept: peer\r\n\r\n");
            Assert.StartsWith("HTTP/1.1 200", (await peer.ReadAsync(TimeSpan.FromSeconds(10))).Text, StringComparison.Ordinal);
        }
        await using (var app = await RawConnection.OpenAsync(shared.Frontend.OutboundPort))
        {
            await app.SendAsync("GET /named/app HTTP/1.1\r\nHost: orders\r\nConnection: close, x-hop\r\nx-hop: app\r\nx-kept: app\r\n\r\n");
            Assert.StartsWith("HTTP/1.1 200", (await app.ReadAsync(TimeSpan.FromSeconds(10))).Text, StringComparison.Ordinal);
        }
        foreach (var from in new[] { "peer", "app" })
        {
            var seen = Assert.Single(shared.OrdersApp.Requests, r => r.Path == "/named/" + from);
            Assert.False(seen.Headers.ContainsKey("x-hop"), $"x-hop from the {from} reached the app");
            Assert.Equal(from, seen.Headers["x-kept"]);
        }
    }

    [Fact]
    public async Task ALargeUploadReachesTheHttp2AppWholeAndItsTrailersReachAnHttp2Caller()
    {
        var upload = string.Concat(Enumerable.Range(0, 1024 * 1024 / 8 + 13).Select(i => i.ToString("D8", System.Globalization.CultureInfo.InvariantCulture)));
        using var client = Http2Caller();
        for (var i = 0; i < 2; i++)
        {
            using var response = await client.PostAsync(new Uri($"http://orders/trailers/{i}"), new StringContent(upload));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal($"orders /trailers/{i}", await response.Content.ReadAsStringAsync());
            Assert.Equal($"len={upload.Length}", Assert.Single(response.TrailingHeaders.GetValues("x-checksum")));
            var seen = Assert.Single(shared.OrdersApp.Requests, r => r.Path == $"/trailers/{i}");
            Assert.Equal(upload, seen.Body);
        }
    }

    [Fact]
    public async Task ConcurrentRequestsFromAnHttp11CallerAreAllAnsweredOverTheMultiplexedLeg()
    {
        using var client = SidecarAdmin.ThroughOutbound(shared.Frontend);
        var answers = await Task.WhenAll(Enumerable.Range(0, 64).Select(i => client.GetStringAsync(new Uri($"http://orders/many/{i}"))));
        Assert.Equal(Enumerable.Range(0, 64).Select(i => $"orders /many/{i}"), answers);
    }

    [Fact]
    public async Task AStreamTheHttp2AppResetsBeforeAnsweringIsTheCallers502()
    {
        // Straight to orders' inbound port, as a mesh peer: through frontend's sidecar the 502s would also count
        // against the endpoint's passive health, and the other tests share it.
        await using (var peer = await RawConnection.OpenTlsAsync(shared.Orders.InboundPort, shared.Ca.IssueLeaf(Caller), shared.Ca.Intermediates))
        {
            // Two requests on one connection: the second, after the reset, is answered over the same leg.
            await peer.SendAsync("GET /abort/1 HTTP/1.1\r\nHost: orders\r\n\r\nGET /after-abort HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n");
            var (answer, closed) = await peer.ReadAsync(TimeSpan.FromSeconds(10));
            Assert.True(closed);
            Assert.StartsWith("HTTP/1.1 502", answer, StringComparison.Ordinal);
            Assert.Contains("no valid HTTP/2 answer", answer, StringComparison.Ordinal);
            var second = answer.IndexOf("HTTP/1.1 200", StringComparison.Ordinal);
            Assert.True(second > 0, answer);
            Assert.Contains("orders /after-abort", answer[second..], StringComparison.Ordinal);
        }
        Assert.Single(shared.OrdersApp.Requests, r => r.Path == "/abort/1");
    }

    [Fact]
    public async Task AnHttp2AppThatIsNotListeningIsTheCallers503()
    {
        using var client = SidecarAdmin.ThroughOutbound(shared.Frontend);
        using var response = await client.GetAsync(new Uri("http://payments/x"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("the app is not reachable", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
