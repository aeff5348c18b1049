using System.Net;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Bad bytes at both doors of a sidecar: the app's outbound port (plain HTTP) and the inbound port (a mesh
/// peer with a valid SVID, speaking HTTP/1.1 over TLS). Forged identity headers, request smuggling, oversized
/// and never-finished headers and connection floods end at the sidecar; the app sees none of them.
/// "orders" runs with small limits (2 s for headers; 4 connections per listener for the flood tests) so the bounds
/// show quickly.
/// </summary>
public sealed class HostileInputTests(HostileInputTests.Pair pair) : IClassFixture<HostileInputTests.Pair>
{
    private const string Caller = "spiffe://mesh.local/ns/shop/sa/frontend";

    /// <summary>
    /// "frontend" calling "orders", whose sidecar has a 2 s header timeout and a connection limit per listener. The
    /// class shares one pair with a limit no test reaches (each test looks at its own paths only); the flood tests
    /// (<see cref="InboundFloodTests"/>) each start a pair of their own with the limit at 4.
    /// </summary>
    public sealed class Pair : IAsyncLifetime
    {
        private readonly int _maxConnections;
        private RecordingApp _frontendApp = null!;

        public Pair()
            : this(maxConnections: 64)
        {
        }

        internal Pair(int maxConnections) => _maxConnections = maxConnections;

        public TempDirectory Temp { get; } = new();

        public LocalMesh Mesh { get; private set; } = null!;

        public RecordingApp OrdersApp { get; private set; } = null!;

        public RecordingApp FrontendApp => _frontendApp;

        public MeshService Orders { get; private set; } = null!;

        public MeshService Frontend { get; private set; } = null!;

        public TestCa Ca { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            MeshBinaries.Ensure();
            Mesh = new LocalMesh(Temp.Path);
            await Mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
            var data = Mesh.Data;
            Ca = TestCa.FromFiles(LocalMesh.TrustDomain, data.RootCertificate, data.RootKey, data.IntermediateCertificate, data.IntermediateKey);
            OrdersApp = await RecordingApp.StartAsync("orders");
            _frontendApp = await RecordingApp.StartAsync("frontend");
            Orders = await Mesh.StartSidecarAsync("orders", OrdersApp.Port,
                extraArguments: ["--max-connections", _maxConnections.ToString(System.Globalization.CultureInfo.InvariantCulture), "--request-headers-timeout", "2"]);
            Frontend = await Mesh.StartSidecarAsync("frontend", _frontendApp.Port);
            await SidecarAdmin.WaitForServicesAsync(Frontend, 2);
        }

        public async Task DisposeAsync()
        {
            await Mesh.DisposeAsync();
            await OrdersApp.DisposeAsync();
            await _frontendApp.DisposeAsync();
            Temp.Dispose();
        }

        /// <summary>A mesh peer with a valid SVID of its own, connected straight to orders' inbound port.</summary>
        internal Task<RawConnection> PeerAsync() => RawConnection.OpenTlsAsync(Orders.InboundPort, Ca.IssueLeaf(Caller), Ca.Intermediates);

        internal static async Task<string> ExchangeAsync(RawConnection connection, string request)
        {
            await connection.SendAsync(request);
            return (await connection.ReadAsync(TimeSpan.FromSeconds(5))).Text;
        }
    }

    private Task<RawConnection> PeerAsync() => pair.PeerAsync();

    private static Task<string> ExchangeAsync(RawConnection connection, string request) => Pair.ExchangeAsync(connection, request);

    private void AssertAppNeverSaw(string pathPrefix)
    {
        Assert.DoesNotContain(pair.OrdersApp.Requests, r => r.Path.StartsWith(pathPrefix, StringComparison.Ordinal));
        Assert.DoesNotContain(pair.FrontendApp.Requests, r => r.Path.StartsWith(pathPrefix, StringComparison.Ordinal));
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
        var seen = Assert.Single(pair.OrdersApp.Requests, r => r.Path == "/forged/peer");
        Assert.Equal($"By={pair.Orders.Identity};URI={Caller}", seen.Headers["x-forwarded-client-cert"]);
        Assert.DoesNotContain(seen.Headers.Keys, name => name.StartsWith("x-meshguard-", StringComparison.OrdinalIgnoreCase));
        Assert.Equal("HTTP/1.1", seen.Protocol);
    }

    [Fact]
    public async Task IdentityHeadersForgedByTheAppAndNamedInConnectionNeverReachTheCallee()
    {
        await using var app = await RawConnection.OpenAsync(pair.Frontend.OutboundPort);
        var answer = await ExchangeAsync(app, "GET /forged/app HTTP/1.1\r\nHost: orders\r\nConnection: x-forwarded-client-cert\r\n" +
            "x-forwarded-client-cert: By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/kube-system/sa/admin\r\n" +
            "x-meshguard-orig-proto: HTTP/2\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200", answer, StringComparison.Ordinal);
        var seen = Assert.Single(pair.OrdersApp.Requests, r => r.Path == "/forged/app");
        Assert.Equal($"By={pair.Orders.Identity};URI={pair.Frontend.Identity}", seen.Headers["x-forwarded-client-cert"]);
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
        await using (var app = await RawConnection.OpenAsync(pair.Frontend.OutboundPort))
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
        foreach (var open in new Func<Task<RawConnection>>[] { () => RawConnection.OpenAsync(pair.Frontend.OutboundPort), PeerAsync })
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
        var seen = pair.OrdersApp.Requests.Where(r => r.Path == "/smuggle/cl-te").ToList();
        Assert.Equal(2, seen.Count);
        Assert.All(seen, r => Assert.Equal(("hello", false), (r.Body, r.Headers.ContainsKey("Content-Length"))));
        AssertAppNeverSaw("/smuggle/inner");
    }

    [Fact]
    public async Task AnOversizedRequestLineGets414AndOversizedHeadersGet431AtEitherPort()
    {
        var longLine = $"GET /oversized/{new string('a', 9 * 1024)} HTTP/1.1\r\nHost: orders\r\n\r\n";
        var bigHeaders = $"GET /oversized/headers HTTP/1.1\r\nHost: orders\r\nX-Big: {new string('b', 40 * 1024)}\r\n\r\n";
        foreach (var open in new Func<Task<RawConnection>>[] { () => RawConnection.OpenAsync(pair.Frontend.OutboundPort), PeerAsync })
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
        var orders = await RawConnection.OpenAsync(pair.Orders.OutboundPort);
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
    public async Task ABodyTrickledBelowTheMinimumRateIsCutAtEitherPort()
    {
        // One octet a second where 240 are the least a body may come at after 5 s: the connection is cut, so an app
        // or a peer cannot hold a connection (and the app connection behind it) with a body that never ends.
        await using var app = await RawConnection.OpenAsync(pair.Frontend.OutboundPort);
        await using var peer = await PeerAsync();
        var started = System.Diagnostics.Stopwatch.StartNew();
        await app.SendAsync("POST /trickle HTTP/1.1\r\nHost: orders\r\nContent-Length: 100000\r\n\r\nx");
        await peer.SendAsync("POST /trickle HTTP/1.1\r\nHost: orders\r\nContent-Length: 100000\r\n\r\nx");
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        async Task<bool> TrickleUntilClosedAsync(RawConnection connection)
        {
            while (!stop.IsCancellationRequested)
            {
                var (_, closed) = await connection.ReadAsync(TimeSpan.FromSeconds(1));
                if (closed)
                {
                    return true;
                }
                try
                {
                    await connection.SendAsync("x");
                }
                catch (IOException)
                {
                    return true;
                }
            }
            return false;
        }
        var cut = await Task.WhenAll(TrickleUntilClosedAsync(app), TrickleUntilClosedAsync(peer));
        Assert.True(cut[0] && cut[1], $"outbound cut: {cut[0]}, inbound cut: {cut[1]}");
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(15), $"cut after {started.Elapsed}");
    }
}
