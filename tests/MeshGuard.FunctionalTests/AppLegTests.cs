using System.Net;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// The inbound sidecar's hand-written HTTP/1.1 leg to the app, against an app that answers byte for byte what
/// each test scripts: what a strict reader passes on (trailers to an HTTP/2 caller), what it refuses (an answer
/// two readers could frame differently), what it never lets through (bytes beyond an answer taken as the next
/// one), and a kept-alive connection the app closed quietly.
/// </summary>
public sealed class AppLegTests(AppLegTests.Mesh shared) : IClassFixture<AppLegTests.Mesh>
{
    private static readonly string LargeBody = string.Concat(Enumerable.Range(0, 1024 * 1024 / 8 + 31).Select(i => (i % 100000).ToString("D8", System.Globalization.CultureInfo.InvariantCulture)));

    // The large body in chunks of 10,007 octets: chunk heads fall anywhere in the sidecar's reads and in the parts it
    // passes on between flushes.
    private static readonly string LargeChunks = string.Concat(LargeBody.Chunk(10007).Select(c => $"{c.Length:x}\r\n{new string(c)}\r\n"));

    /// <summary>One mesh for the class: no test changes it, each test uses paths of its own and counts connections from its own start.</summary>
    public sealed class Mesh : IAsyncLifetime
    {
        public ScriptedHttp1App OrdersApp { get; private set; } = null!;

        public MeshService Frontend { get; private set; } = null!;

        public MeshService Orders { get; private set; } = null!;

        public TestCa Ca { get; private set; } = null!;

        private readonly TempDirectory _temp = new();
        private LocalMesh _mesh = null!;
        private RecordingApp _frontendApp = null!;

        private static ScriptedHttp1App.Answer Script(string path) => path switch
        {
            "/trailers" => new("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\nContent-Type: text/plain\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: abc\r\n\r\n"),
            "/two-lengths" => new("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
            "/extra" => new("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"),
            "/early" => new("HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large", BeforeBody: true),
            _ when path.StartsWith("/hold/", StringComparison.Ordinal) => new("", Hold: true),
            "/close-quietly" => new("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", CloseAfter: true),
            "/large" => new($"HTTP/1.1 200 OK\r\nContent-Length: {LargeBody.Length}\r\n\r\n{LargeBody}"),
            "/large-chunked" => new($"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n{LargeChunks}0\r\nx-checksum: large\r\n\r\n"),
            "/large-until-close" => new($"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{LargeBody}", CloseAfter: true),
            _ => new($"HTTP/1.1 200 OK\r\nContent-Length: {4 + path.Length}\r\n\r\napp {path}"),
        };

        // 1 MiB and a few octets, so the last read from the app and the last frame are partial.

        public async Task InitializeAsync()
        {
            MeshBinaries.Ensure();
            _mesh = new LocalMesh(_temp.Path);
            await _mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
            var data = _mesh.Data;
            Ca = TestCa.FromFiles(LocalMesh.TrustDomain, data.RootCertificate, data.RootKey, data.IntermediateCertificate, data.IntermediateKey);
            OrdersApp = ScriptedHttp1App.Start(Script);
            _frontendApp = await RecordingApp.StartAsync("frontend");
            Orders = await _mesh.StartSidecarAsync("orders", OrdersApp.Port, extraArguments: ["--app-protocol", "http1"]);
            Frontend = await _mesh.StartSidecarAsync("frontend", _frontendApp.Port);
            await SidecarAdmin.WaitForServicesAsync(Frontend, 2);
        }

        public async Task DisposeAsync()
        {
            await _mesh.DisposeAsync();
            await OrdersApp.DisposeAsync();
            await _frontendApp.DisposeAsync();
            _temp.Dispose();
        }
    }

    // An app of frontend's speaking HTTP/2 (prior knowledge) to its sidecar.
    private HttpClient Http2Caller() => new(SidecarAdmin.RedirectedToOutbound(shared.Frontend))
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(15),
    };

    [Fact]
    public async Task AChunkedAnswerWithTrailersFromAnHttp11AppReachesAnHttp2CallerWhole()
    {
        using var client = Http2Caller();
        using var response = await client.GetAsync(new Uri("http://orders/trailers"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("hello world", await response.Content.ReadAsStringAsync());
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("abc", Assert.Single(response.TrailingHeaders.GetValues("x-checksum")));
    }

    [Fact]
    public async Task ALargeAnswerWithALengthReachesAnHttp11CallerToItsLastOctet()
    {
        using var client = SidecarAdmin.ThroughOutbound(shared.Frontend);
        for (var i = 0; i < 3; i++)
        {
            var body = await client.GetStringAsync(new Uri("http://orders/large"));
            Assert.Equal(LargeBody.Length, body.Length);
            Assert.Equal(LargeBody, body);
        }
    }

    [Fact]
    public async Task ALargeChunkedAnswerWithTrailersReachesAnHttp2CallerWhole()
    {
        using var client = Http2Caller();
        for (var i = 0; i < 2; i++)
        {
            using var response = await client.GetAsync(new Uri("http://orders/large-chunked"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.Content.ReadAsStringAsync();
            Assert.Equal(LargeBody.Length, body.Length);
            Assert.Equal(LargeBody, body);
            Assert.Equal("large", Assert.Single(response.TrailingHeaders.GetValues("x-checksum")));
        }
    }

    [Fact]
    public async Task ALargeAnswerThatTheAppsCloseEndsReachesTheCallerToItsLastOctet()
    {
        using var client = SidecarAdmin.ThroughOutbound(shared.Frontend);
        var body = await client.GetStringAsync(new Uri("http://orders/large-until-close"));
        Assert.Equal(LargeBody.Length, body.Length);
        Assert.Equal(LargeBody, body);
    }

    [Fact]
    public async Task AnAnswerWithTwoLengthsIsRefusedWith502AndNotPassedOn()
    {
        using var client = SidecarAdmin.ThroughOutbound(shared.Frontend);
        using var response = await client.GetAsync(new Uri("http://orders/two-lengths"));
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("abc", body, StringComparison.Ordinal);
        Assert.Contains("not valid HTTP/1.1", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BytesAnAppSendsBeyondItsAnswerAreNeverTakenAsTheNextAnswer()
    {
        using var client = SidecarAdmin.ThroughOutbound(shared.Frontend);
        Assert.Equal("ok", await client.GetStringAsync(new Uri("http://orders/extra")));
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("app /next", await client.GetStringAsync(new Uri("http://orders/next")));
        }
        // The connection that carried the extra bytes carried nothing after them.
        var extra = Assert.Single(shared.OrdersApp.Requests, r => r.Head.StartsWith("GET /extra ", StringComparison.Ordinal));
        Assert.DoesNotContain(shared.OrdersApp.Requests, r => r.Connection == extra.Connection && r.Head.StartsWith("GET /next ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AnAnswerTheAppGivesBeforeReadingALargeUploadReachesTheCaller()
    {
        using var client = SidecarAdmin.ThroughOutbound(shared.Frontend);
        for (var i = 0; i < 5; i++)
        {
            using var content = new ByteArrayContent(new byte[4 * 1024 * 1024]);
            using var response = await client.PostAsync(new Uri("http://orders/early"), content);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            Assert.Equal("too large", await response.Content.ReadAsStringAsync());
        }
        // The leg still works after it gave those connections up.
        Assert.Equal("app /after-early", await client.GetStringAsync(new Uri("http://orders/after-early")));
    }

    [Fact]
    public async Task AKeptAliveConnectionTheAppClosedQuietlyIsReplacedWithoutTheCallerNoticing()
    {
        using var client = SidecarAdmin.ThroughOutbound(shared.Frontend);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("ok", await client.GetStringAsync(new Uri("http://orders/close-quietly")));
            // The app's FIN reaches the sidecar while the connection sits in its pool as reusable.
            await Task.Delay(200);
            using var response = await client.GetAsync(new Uri($"http://orders/after-close/{i}"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal($"app /after-close/{i}", await response.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task TheAppReceivesTheHeadTheLegWritesAndOneConnectionCarriesManyRequests()
    {
        using var client = SidecarAdmin.ThroughOutbound(shared.Frontend);
        var before = shared.OrdersApp.Connections;
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal($"app /keep/{i}?q=1", await client.GetStringAsync(new Uri($"http://orders/keep/{i}?q=1")));
        }
        Assert.True(shared.OrdersApp.Connections - before <= 2, $"{shared.OrdersApp.Connections - before} connections for 20 sequential requests");
        var head = shared.OrdersApp.Requests.Last(r => r.Head.StartsWith("GET /keep/19?q=1 HTTP/1.1\r\n", StringComparison.Ordinal)).Head;
        Assert.Contains("\r\nHost: orders\r\n", head + "\r\n", StringComparison.Ordinal);
        Assert.Contains("\r\nx-forwarded-client-cert: By=spiffe://", head, StringComparison.Ordinal);
        Assert.DoesNotContain("Transfer-Encoding", head, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Content-Length", head, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task FieldsACallerNamesInConnectionStopAtTheSidecarItSentThemTo()
    {
        // Each request names a field hop-by-hop beside close: plain heads in origin-form and absolute-form (the own
        // server's), 100-continue and bare LF line ends (left to Kestrel's server, whose collection keeps only "close" of such a
        // value), from a mesh peer to the inbound port and from an app to its outbound port.
        var requests = new (string Name, string Bytes)[]
        {
            ("peer-plain", "GET /named/peer-plain HTTP/1.1\r\nHost: orders\r\nConnection: x-hop, close\r\nx-hop: 1\r\nx-kept: 1\r\n\r\n"),
            ("peer-expect", "GET /named/peer-expect HTTP/1.1\r\nHost: orders\r\nExpect: 100-continue\r\nConnection: x-hop, close\r\nx-hop: 1\r\nx-kept: 1\r\n\r\n"),
            ("peer-bare-lf", "GET /named/peer-bare-lf HTTP/1.1\nHost: orders\nConnection: x-hop, close\nx-hop: 1\nx-kept: 1\n\n"),
            ("app-plain", "GET /named/app-plain HTTP/1.1\r\nHost: orders\r\nConnection: close, x-hop\r\nx-hop: 1\r\nx-kept: 1\r\n\r\n"),
            ("app-absolute", "GET http://orders/named/app-absolute HTTP/1.1\r\nHost: orders\r\nConnection: x-hop,close\r\nx-hop: 1\r\nx-kept: 1\r\n\r\n"),
        };
        foreach (var (name, bytes) in requests)
        {
            await using var connection = name.StartsWith("peer", StringComparison.Ordinal)
                ? await RawConnection.OpenTlsAsync(shared.Orders.InboundPort, shared.Ca.IssueLeaf("spiffe://mesh.local/ns/shop/sa/frontend"), shared.Ca.Intermediates)
                : await RawConnection.OpenAsync(shared.Frontend.OutboundPort);
            await connection.SendAsync(bytes);
            var (answer, _) = await connection.ReadAsync(TimeSpan.FromSeconds(10));
            Assert.True(answer.StartsWith("HTTP/1.1 200", StringComparison.Ordinal), $"{name}: {answer}");
            var head = Assert.Single(shared.OrdersApp.Requests, r => r.Head.StartsWith($"GET /named/{name} ", StringComparison.Ordinal)).Head;
            Assert.False(head.Contains("x-hop", StringComparison.OrdinalIgnoreCase), $"{name}: {head}");
            Assert.Contains("\r\nx-kept: 1", head, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public async Task ACallerThatHangsUpWhileTheAppHoldsItsRequestEndsTheAppsRequestToo()
    {
        // The app never answers these; the caller closes its connection while it waits. Over HTTP/1.1 from a mesh peer
        // straight to the inbound port (whose own TLS connection is read only when asked), and from an app to its
        // outbound port, without a body, with a Content-Length one and with a chunked one: the request to the app must
        // end with it, not wait out the 100 s activity timeout.
        foreach (var name in new[] { "peer", "app", "peer-body", "app-body", "peer-chunked", "app-chunked" })
        {
            var method = name.Contains('-', StringComparison.Ordinal) ? "POST" : "GET";
            var body = name.EndsWith("-body", StringComparison.Ordinal) ? "Content-Length: 5\r\n\r\nhello"
                : name.EndsWith("-chunked", StringComparison.Ordinal) ? "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                : "\r\n";
            var connection = name.StartsWith("peer", StringComparison.Ordinal)
                ? await RawConnection.OpenTlsAsync(shared.Orders.InboundPort, shared.Ca.IssueLeaf("spiffe://mesh.local/ns/shop/sa/frontend"), shared.Ca.Intermediates)
                : await RawConnection.OpenAsync(shared.Frontend.OutboundPort);
            await using (connection)
            {
                await connection.SendAsync($"{method} /hold/{name} HTTP/1.1\r\nHost: orders\r\n{body}");
                Assert.True(await Eventually.TrueAsync(() => shared.OrdersApp.Requests.Any(r => r.Head.StartsWith($"{method} /hold/{name} ", StringComparison.Ordinal)), TimeSpan.FromSeconds(10)),
                    $"{name}: the app never got the request");
                Assert.DoesNotContain($"/hold/{name}", shared.OrdersApp.Abandoned);
            }
            Assert.True(await Eventually.TrueAsync(() => shared.OrdersApp.Abandoned.Contains($"/hold/{name}"), TimeSpan.FromSeconds(10)),
                $"{name}: the app's request outlived its caller");
        }
    }

    [Fact]
    public async Task AnUploadTheSidecarRefusesUnreadIsDrainedAndItsConnectionServesTheNextRequest()
    {
        // A lower-case method is refused by the outbound handler before it reads the 256 KiB body; the body is read
        // and dropped after the refusal, so the next request on the same connection is read from its own first octet.
        var body = new string('u', 256 * 1024);
        await using var app = await RawConnection.OpenAsync(shared.Frontend.OutboundPort);
        await app.SendAsync($"post /drained/refused HTTP/1.1\r\nHost: orders\r\nContent-Length: {body.Length}\r\n\r\n{body}" +
            "GET /drained/next HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n");
        var (answer, closed) = await app.ReadAsync(TimeSpan.FromSeconds(10));
        Assert.True(closed, answer);
        Assert.StartsWith("HTTP/1.1 400", answer, StringComparison.Ordinal);
        var next = answer.IndexOf("HTTP/1.1 200", StringComparison.Ordinal);
        Assert.True(next > 0, answer);
        Assert.EndsWith("app /drained/next", answer, StringComparison.Ordinal);
        Assert.DoesNotContain(shared.OrdersApp.Requests, r => r.Head.Contains("/drained/refused", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AnAppUsingTheSidecarAsItsHttpProxyKeepsItsConnectionAcrossRequests()
    {
        // Absolute-form targets, as an app sends them through HTTP_PROXY: the own server reads them, so the connection
        // is kept (a request left to Kestrel's server would close it after its answer).
        await using var app = await RawConnection.OpenAsync(shared.Frontend.OutboundPort);
        await app.SendAsync("GET http://orders/proxied/1?q=1 HTTP/1.1\r\nHost: orders\r\n\r\n" +
            "GET http://orders/proxied/2 HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n");
        var (answer, closed) = await app.ReadAsync(TimeSpan.FromSeconds(10));
        Assert.True(closed, answer);
        Assert.Contains("app /proxied/1?q=1", answer, StringComparison.Ordinal);
        Assert.EndsWith("app /proxied/2", answer, StringComparison.Ordinal);
        Assert.Single(shared.OrdersApp.Requests, r => r.Head.StartsWith("GET /proxied/1?q=1 HTTP/1.1\r\n", StringComparison.Ordinal));
    }
}
