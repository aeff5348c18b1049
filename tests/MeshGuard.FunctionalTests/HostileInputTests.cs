using System.Net;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Bad bytes at both doors of a sidecar: the app's outbound port (plain HTTP) and the inbound port (a mesh
/// peer with a valid SVID, speaking HTTP/1.1 over TLS). Forged identity headers, request smuggling, oversized
/// and never-finished headers and connection floods end at the sidecar; the app sees none of them.
/// "orders" runs with small limits (4 connections per listener, 2 s for headers) so the bounds show quickly.
/// </summary>
public sealed class HostileInputTests : IAsyncLifetime
{
    private const string Caller = "spiffe://mesh.local/ns/shop/sa/frontend";
    private readonly TempDirectory _temp = new();
    private LocalMesh _mesh = null!;
    private RecordingApp _ordersApp = null!;
    private RecordingApp _frontendApp = null!;
    private MeshService _orders = null!;
    private MeshService _frontend = null!;
    private TestCa _ca = null!;

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        _mesh = new LocalMesh(_temp.Path);
        await _mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
        var data = _mesh.Data;
        _ca = TestCa.FromFiles(LocalMesh.TrustDomain, data.RootCertificate, data.RootKey, data.IntermediateCertificate, data.IntermediateKey);
        _ordersApp = await RecordingApp.StartAsync("orders");
        _frontendApp = await RecordingApp.StartAsync("frontend");
        _orders = await _mesh.StartSidecarAsync("orders", _ordersApp.Port, extraArguments: ["--max-connections", "4", "--request-headers-timeout", "2"]);
        _frontend = await _mesh.StartSidecarAsync("frontend", _frontendApp.Port);
        await SidecarAdmin.WaitForServicesAsync(_frontend, 2);
    }

    public async Task DisposeAsync()
    {
        await _mesh.DisposeAsync();
        await _ordersApp.DisposeAsync();
        await _frontendApp.DisposeAsync();
        _temp.Dispose();
    }

    private Task<RawConnection> PeerAsync() => RawConnection.OpenTlsAsync(_orders.InboundPort, _ca.IssueLeaf(Caller), _ca.Intermediates);

    private static async Task<string> ExchangeAsync(RawConnection connection, string request)
    {
        await connection.SendAsync(request);
        return (await connection.ReadAsync(TimeSpan.FromSeconds(5))).Text;
    }

    private void AssertAppNeverSaw(string pathPrefix)
    {
        Assert.DoesNotContain(_ordersApp.Requests, r => r.Path.StartsWith(pathPrefix, StringComparison.Ordinal));
        Assert.DoesNotContain(_frontendApp.Requests, r => r.Path.StartsWith(pathPrefix, StringComparison.Ordinal));
    }

    [Fact]
    public async Task IdentityHeadersForgedByAMeshPeerAndNamedInConnectionReachTheAppAsTheSidecarSetThem()
    {
        // Naming the header in Connection must not make the sidecar drop the real one it adds.
        await using var peer = await PeerAsync();
        var answer = await ExchangeAsync(peer, "GET /forged/peer HTTP/1.1\r\nHost: orders\r\nConnection: close, x-forwarded-client-cert, x-meshguard-caller\r\n" +
            "x-forwarded-client-cert: By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/kube-system/sa/admin\r\n" +
            "x-meshguard-caller: spiffe://mesh.local/ns/kube-system/sa/admin\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200", answer, StringComparison.Ordinal);
        var seen = Assert.Single(_ordersApp.Requests, r => r.Path == "/forged/peer");
        Assert.Equal($"By={_orders.Identity};URI={Caller}", seen.Headers["x-forwarded-client-cert"]);
        Assert.DoesNotContain(seen.Headers.Keys, name => name.StartsWith("x-meshguard-", StringComparison.OrdinalIgnoreCase));
        Assert.Equal("HTTP/1.1", seen.Protocol);
    }

    [Fact]
    public async Task IdentityHeadersForgedByTheAppAndNamedInConnectionNeverReachTheCallee()
    {
        await using var app = await RawConnection.OpenAsync(_frontend.OutboundPort);
        var answer = await ExchangeAsync(app, "GET /forged/app HTTP/1.1\r\nHost: orders\r\nConnection: x-forwarded-client-cert\r\n" +
            "x-forwarded-client-cert: By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/kube-system/sa/admin\r\n" +
            "x-meshguard-orig-proto: HTTP/2\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200", answer, StringComparison.Ordinal);
        var seen = Assert.Single(_ordersApp.Requests, r => r.Path == "/forged/app");
        Assert.Equal($"By={_orders.Identity};URI={_frontend.Identity}", seen.Headers["x-forwarded-client-cert"]);
        Assert.Equal("HTTP/1.1", seen.Protocol);
    }

    public static TheoryData<string, string> SmugglingAttempts => new()
    {
        { "/smuggle/two-cl", "POST /smuggle/two-cl HTTP/1.1\r\nHost: orders\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello" },
        { "/smuggle/obs-fold", "GET /smuggle/obs-fold HTTP/1.1\r\nHost: orders\r\nX-Folded: a\r\n b\r\n\r\n" },
        { "/smuggle/te-obfuscated", "POST /smuggle/te-obfuscated HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" },
    };

    [Theory]
    [MemberData(nameof(SmugglingAttempts))]
    public async Task ASmugglingAttemptAtEitherPortIsRefusedWith400AndReachesNoApp(string path, string request)
    {
        await using (var app = await RawConnection.OpenAsync(_frontend.OutboundPort))
        {
            Assert.StartsWith("HTTP/1.1 400", await ExchangeAsync(app, request), StringComparison.Ordinal);
        }
        await using (var peer = await PeerAsync())
        {
            Assert.StartsWith("HTTP/1.1 400", await ExchangeAsync(peer, request), StringComparison.Ordinal);
        }
        await Task.Delay(200);
        AssertAppNeverSaw(path);
    }

    [Fact]
    public async Task ARequestWithContentLengthAndTransferEncodingIsFramedByTheChunksAndItsConnectionClosedSoNothingIsSmuggled()
    {
        // RFC 9112 6.1: frame by Transfer-Encoding alone, then close. The bytes after the chunked body (a second
        // request a Content-Length reader would have seen) are never parsed, and the app gets no Content-Length.
        const string Request = "POST /smuggle/cl-te HTTP/1.1\r\nHost: orders\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
            "5\r\nhello\r\n0\r\n\r\nGET /smuggle/inner HTTP/1.1\r\nHost: orders\r\n\r\n";
        foreach (var open in new Func<Task<RawConnection>>[] { () => RawConnection.OpenAsync(_frontend.OutboundPort), PeerAsync })
        {
            await using var connection = await open();
            await connection.SendAsync(Request);
            var (text, closed) = await connection.ReadAsync(TimeSpan.FromSeconds(5));
            Assert.StartsWith("HTTP/1.1 200", text, StringComparison.Ordinal);
            Assert.Contains("Connection: close", text, StringComparison.OrdinalIgnoreCase);
            Assert.True(closed, "the connection stays open after an ambiguously framed request");
            Assert.Equal(1, System.Text.RegularExpressions.Regex.Count(text, "HTTP/1.1 "));
        }
        await Task.Delay(200);
        var seen = _ordersApp.Requests.Where(r => r.Path == "/smuggle/cl-te").ToList();
        Assert.Equal(2, seen.Count);
        Assert.All(seen, r => Assert.Equal(("hello", false), (r.Body, r.Headers.ContainsKey("Content-Length"))));
        AssertAppNeverSaw("/smuggle/inner");
    }

    [Fact]
    public async Task AnOversizedRequestLineGets414AndOversizedHeadersGet431AtEitherPort()
    {
        var longLine = $"GET /oversized/{new string('a', 9 * 1024)} HTTP/1.1\r\nHost: orders\r\n\r\n";
        var bigHeaders = $"GET /oversized/headers HTTP/1.1\r\nHost: orders\r\nX-Big: {new string('b', 40 * 1024)}\r\n\r\n";
        foreach (var open in new Func<Task<RawConnection>>[] { () => RawConnection.OpenAsync(_frontend.OutboundPort), PeerAsync })
        {
            await using (var connection = await open())
            {
                Assert.StartsWith("HTTP/1.1 414", await ExchangeAsync(connection, longLine), StringComparison.Ordinal);
            }
            await using (var connection = await open())
            {
                Assert.StartsWith("HTTP/1.1 431", await ExchangeAsync(connection, bigHeaders), StringComparison.Ordinal);
            }
        }
        AssertAppNeverSaw("/oversized");
    }

    [Fact]
    public async Task HeadersThatNeverFinishAreCutAfterTheTimeoutAtEitherPort()
    {
        var orders = await RawConnection.OpenAsync(_orders.OutboundPort);
        await using var _ = orders;
        await using var peer = await PeerAsync();
        var started = System.Diagnostics.Stopwatch.StartNew();
        await orders.SendAsync("GET /slow HTTP/1.1\r\nHost: frontend\r\nX-Slow: ");
        await peer.SendAsync("GET /slow HTTP/1.1\r\nHost: orders\r\nX-Slow: ");
        var (appText, appClosed) = await orders.ReadAsync(TimeSpan.FromSeconds(10));
        var (peerText, peerClosed) = await peer.ReadAsync(TimeSpan.FromSeconds(10));
        // --request-headers-timeout 2 (Kestrel checks once a second): cut well before the 10 s the test waits.
        Assert.True(appClosed && peerClosed, $"outbound closed: {appClosed}, inbound closed: {peerClosed}");
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(8), $"closed after {started.Elapsed}");
        Assert.All(new[] { appText, peerText }, text => Assert.True(text.Length == 0 || text.StartsWith("HTTP/1.1 408", StringComparison.Ordinal), text));
        AssertAppNeverSaw("/slow");
    }

    [Fact]
    public async Task ConnectionsBeyondTheLimitAreClosedAtOnceCountedAndTheAdminPortStillAnswers()
    {
        var held = new List<RawConnection>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                held.Add(await PeerAsync());
            }
            // The fifth is closed before any TLS: the handshake fails.
            await Assert.ThrowsAnyAsync<Exception>(PeerAsync);
            using var admin = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var metrics = await SidecarAdmin.MetricsAsync(_orders);
            Assert.Contains("meshguard_connections_open{listener=\"inbound\"} 4", metrics, StringComparison.Ordinal);
            Assert.Matches("meshguard_connections_refused_total\\{listener=\"inbound\"\\} [1-9]", metrics);
            Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(new Uri($"http://127.0.0.1:{_orders.AdminPort}/ready"))).StatusCode);

            // Outbound is bounded apart: the app can still call out while peers fill inbound.
            using var outbound = SidecarAdmin.ThroughOutbound(_orders);
            Assert.Equal(HttpStatusCode.OK, (await outbound.GetAsync(new Uri("http://frontend/while-full"))).StatusCode);

            // One closes; a new peer is served again.
            await held[0].DisposeAsync();
            held.RemoveAt(0);
            await Task.Delay(200);
            await using var again = await PeerAsync();
            Assert.StartsWith("HTTP/1.1 200", await ExchangeAsync(again, "GET /after-full HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n"), StringComparison.Ordinal);
        }
        finally
        {
            foreach (var connection in held)
            {
                await connection.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task AnHttp2RapidResetFloodIsCutOffAfterBoundedWorkAndOtherPeersAreStillServed()
    {
        // CVE-2023-44487: streams opened and cancelled at once cost the server work but never count against
        // its stream limit. Kestrel ends such a connection; the test measures how much got through first.
        const int Flood = 20_000;
        var leaf = _ca.IssueLeaf(Caller);
        File.WriteAllText(_temp.Combine("rr-chain.pem"), _ca.ChainPem(leaf));
        File.WriteAllText(_temp.Combine("rr-key.pem"), leaf.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        var script = Path.Combine(AppContext.BaseDirectory, "Apps", "rapid_reset.py");
        var (exit, output) = await ExternalProcess.RunAsync("/usr/bin/python3", [script, "127.0.0.1", _orders.InboundPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            _temp.Combine("rr-chain.pem"), _temp.Combine("rr-key.pem"), _mesh.Data.TrustBundle, Flood.ToString(System.Globalization.CultureInfo.InvariantCulture), "orders"],
            timeout: TimeSpan.FromSeconds(60));
        Assert.True(exit == 0, output);
        using var result = System.Text.Json.JsonDocument.Parse(output.Trim().Split('\n')[^1]);
        var sent = result.RootElement.GetProperty("sent").GetInt32();
        Assert.True(result.RootElement.GetProperty("closed").GetBoolean() || result.RootElement.GetProperty("goaway").ValueKind == System.Text.Json.JsonValueKind.String, output);
        Assert.True(sent < Flood, $"the sidecar took all {Flood} reset streams: {output}");
        await Task.Delay(500);
        var reachedApp = _ordersApp.Requests.Count(r => r.Path.StartsWith("/rapid/", StringComparison.Ordinal));
        Console.WriteLine($"rapid reset: connection ended after {sent} streams; {reachedApp} reached the app");
        Assert.True(reachedApp <= sent, $"{reachedApp} requests reached the app from {sent} streams");

        // Another peer is served as usual.
        await using var other = await PeerAsync();
        Assert.StartsWith("HTTP/1.1 200", await ExchangeAsync(other, "GET /after-flood HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n"), StringComparison.Ordinal);
    }
}
