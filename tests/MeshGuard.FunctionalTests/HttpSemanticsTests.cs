using System.Net;
using System.Net.Sockets;
using System.Text;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// HTTP as the app speaks it, carried over the HTTP/2 mTLS leg without changing its meaning: the app's own
/// version at the far end, hop-by-hop headers ending at the first hop (RFC 9110 7.6.1), Expect: 100-continue,
/// chunked bodies and trailers (HTTP/2 callers: Kestrel writes no HTTP/1.1 trailers). "orders" is an HTTP/1.1-only app whose sidecar is told so (--app-protocol
/// http1); "payments" is an HTTP/2-only app behind a sidecar left on auto.
/// </summary>
public sealed class HttpSemanticsTests(HttpSemanticsTests.Apps apps) : IClassFixture<HttpSemanticsTests.Apps>
{
    /// <summary>One mesh for the class: no test changes it, and each test looks only at requests on its own paths.</summary>
    public sealed class Apps : IAsyncLifetime
    {
        private LocalMesh _mesh = null!;
        private RecordingApp _frontendApp = null!;

        public TempDirectory Temp { get; } = new();

        public RecordingApp OrdersApp { get; private set; } = null!;

        public RecordingApp PaymentsApp { get; private set; } = null!;

        public MeshService Frontend { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            MeshBinaries.Ensure();
            _mesh = new LocalMesh(Temp.Path);
            Directory.CreateDirectory(_mesh.Data.PoliciesDirectory);
            File.WriteAllText(Path.Combine(_mesh.Data.PoliciesDirectory, "private.yaml"), """
                apiVersion: meshguard.io/v1alpha1
                kind: AccessPolicy
                metadata: { name: no-private, namespace: shop }
                spec:
                  selector: { serviceAccount: orders }
                  action: deny
                  rules:
                    - name: nobody-private
                      from: [ { namespace: shop } ]
                      to: [ { paths: ["/private/*"] } ]
                """);
            await _mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
            OrdersApp = await RecordingApp.StartAsync("orders");
            PaymentsApp = await RecordingApp.StartAsync("payments", HttpProtocols.Http2);
            _frontendApp = await RecordingApp.StartAsync("frontend");
            await _mesh.StartSidecarAsync("orders", OrdersApp.Port, extraArguments: ["--app-protocol", "http1"]);
            await _mesh.StartSidecarAsync("payments", PaymentsApp.Port);
            Frontend = await _mesh.StartSidecarAsync("frontend", _frontendApp.Port);
            await SidecarAdmin.WaitForServicesAsync(Frontend, 3);
        }

        public async Task DisposeAsync()
        {
            await _mesh.DisposeAsync();
            await OrdersApp.DisposeAsync();
            await PaymentsApp.DisposeAsync();
            await _frontendApp.DisposeAsync();
            Temp.Dispose();
        }
    }

    private HttpClient Http2Client() => new(SidecarAdmin.RedirectedToOutbound(apps.Frontend))
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(15),
    };

    [Fact]
    public async Task AnHttp2CallerReachesAnHttp2AppOverHttp2AndTheSamePortStillSpeaksHttp11()
    {
        using var client = Http2Client();
        using var response = await client.PostAsync(new Uri("http://payments/h2c/pay"), new StringContent("over h2c"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("payments /h2c/pay", await response.Content.ReadAsStringAsync());
        var seen = Assert.Single(apps.PaymentsApp.Requests, r => r.Path == "/h2c/pay");
        Assert.Equal(("POST", "over h2c", "HTTP/2"), (seen.Method, seen.Body, seen.Protocol));

        // The same outbound port still takes HTTP/1.1 from the next client.
        using var http11 = SidecarAdmin.ThroughOutbound(apps.Frontend);
        using var again = await http11.GetAsync(new Uri("http://orders/h1/after"));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(HttpVersion.Version11, again.Version);
        Assert.Equal("HTTP/1.1", Assert.Single(apps.OrdersApp.Requests, r => r.Path == "/h1/after").Protocol);
    }

    [Fact]
    public async Task AnHttp2CallerReachesAnHttp11OnlyAppOverHttp11WhenItsSidecarIsToldSo()
    {
        using var client = Http2Client();
        using var response = await client.GetAsync(new Uri("http://orders/h2-to-h1"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("HTTP/1.1", Assert.Single(apps.OrdersApp.Requests, r => r.Path == "/h2-to-h1").Protocol);
    }

    [Fact]
    public async Task HeadersTheConnectionHeaderNamesStopAtTheFirstHopBothWays()
    {
        // Raw bytes, so that exactly these headers are sent. (Not "Connection: keep-alive, x-hop": Kestrel in .NET 10
        // keeps only "keep-alive" of such a value before any middleware sees it, so x-hop would pass; see ARCHITECTURE.md.)
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, apps.Frontend.OutboundPort);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            "GET /hop/1 HTTP/1.1\r\nHost: orders\r\nConnection: x-hop, X-Other-Hop\r\nx-hop: 1\r\nx-other-hop: 2\r\n" +
            "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nx-end: 3\r\n\r\n"));
        var head = await ReadHeadAsync(stream);

        var seen = Assert.Single(apps.OrdersApp.Requests, r => r.Path == "/hop/1");
        Assert.Equal("3", seen.Headers["x-end"]);
        Assert.False(seen.Headers.ContainsKey("x-hop"));
        Assert.False(seen.Headers.ContainsKey("x-other-hop"));
        Assert.False(seen.Headers.ContainsKey("keep-alive"));
        Assert.False(seen.Headers.ContainsKey("proxy-connection"));

        // The app's response named x-resp-hop in its Connection header: the caller sees the end-to-end header only.
        Assert.StartsWith("HTTP/1.1 200", head, StringComparison.Ordinal);
        Assert.Contains("x-resp-end: passes", head, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("x-resp-hop", head, StringComparison.OrdinalIgnoreCase);
    }

    private static async Task<string> ReadHeadAsync(Stream stream)
    {
        var buffer = new byte[8192];
        var total = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (total < buffer.Length)
        {
            var read = await stream.ReadAsync(buffer.AsMemory(total), timeout.Token);
            if (read == 0)
            {
                break;
            }
            total += read;
            var text = Encoding.ASCII.GetString(buffer, 0, total);
            if (text.Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                return text;
            }
        }
        return Encoding.ASCII.GetString(buffer, 0, total);
    }

    [Fact]
    public async Task AnExpectContinueUploadGetsItsInterimResponseAndTheWholeBodyArrives()
    {
        var body = Path.Combine(apps.Temp.Path, "expect-body.txt");
        File.WriteAllText(body, new string('e', 200_000));
        var (exit, output) = await ExternalProcess.RunAsync("curl", ["-sv", "--max-time", "20", "-x", $"http://127.0.0.1:{apps.Frontend.OutboundPort}",
            "-H", "Expect: 100-continue", "--data-binary", "@" + body, "http://orders/expect/upload"]);
        Assert.True(exit == 0, output);
        Assert.Contains("< HTTP/1.1 100 Continue", output, StringComparison.Ordinal);
        Assert.Contains("< HTTP/1.1 200", output, StringComparison.Ordinal);
        Assert.Equal(200_000, Assert.Single(apps.OrdersApp.Requests, r => r.Path == "/expect/upload").Body.Length);
    }

    [Fact]
    public async Task ADeniedExpectContinueUploadIsRefusedBeforeItsBodyIsSent()
    {
        var body = Path.Combine(apps.Temp.Path, "private-body.txt");
        File.WriteAllText(body, new string('p', 200_000));
        var (exit, output) = await ExternalProcess.RunAsync("curl", ["-sv", "--max-time", "20", "-x", $"http://127.0.0.1:{apps.Frontend.OutboundPort}",
            "-H", "Expect: 100-continue", "--data-binary", "@" + body, "http://orders/private/upload"]);
        Assert.True(exit == 0, output);
        Assert.Contains("< HTTP/1.1 403", output, StringComparison.Ordinal);
        // The refusal came instead of 100 Continue, so curl never sent the body.
        Assert.DoesNotContain("100 Continue", output, StringComparison.Ordinal);
        Assert.DoesNotContain("upload completely sent off", output, StringComparison.Ordinal);
        Assert.DoesNotContain(apps.OrdersApp.Requests, r => r.Path == "/private/upload");
    }

    [Fact]
    public async Task AChunkedUploadFromAnHttp11CallerArrivesWhole()
    {
        using var client = SidecarAdmin.ThroughOutbound(apps.Frontend);
        using var content = new StreamContent(new NonSeekableStream(Encoding.ASCII.GetBytes(new string('c', 100_000))));
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("http://orders/chunked/h1")) { Content = content };
        request.Headers.TransferEncodingChunked = true;
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("orders /chunked/h1", await response.Content.ReadAsStringAsync());
        var seen = Assert.Single(apps.OrdersApp.Requests, r => r.Path == "/chunked/h1");
        Assert.Equal(100_000, seen.Body.Length);
        Assert.Equal("chunked", seen.Headers["Transfer-Encoding"]);
    }

    [Fact]
    public async Task ResponseTrailersOfAnHttp2AppReachAnHttp2Caller()
    {
        using var client = Http2Client();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("http://payments/trailers/h2"))
        {
            Content = new StringContent("sum me"),
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.TE.ParseAdd("trailers");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("payments /trailers/h2", await response.Content.ReadAsStringAsync());
        Assert.Equal("len=6", response.TrailingHeaders.GetValues("x-checksum").Single());
    }

    /// <summary>A body of unknown length, so the client must send it chunked.</summary>
    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
