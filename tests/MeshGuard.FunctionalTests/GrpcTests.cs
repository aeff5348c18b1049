using System.Net;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using MeshGuard.Ctl.Demo;
using MeshGuard.FlowLog;
using MeshGuard.FunctionalTests.Grpc;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// gRPC through a sidecar pair, between two implementations the project did not write: a Grpc.Net client calls
/// a python3-grpcio server, a python3-grpcio client calls a Grpc.AspNetCore server. Policies name gRPC methods
/// as paths; Admin is allowed to no one.
/// </summary>
public sealed class GrpcTests(GrpcTests.Mesh shared) : IClassFixture<GrpcTests.Mesh>
{
    private static readonly string Script = Path.Combine(AppContext.BaseDirectory, "Apps", "grpc_echo.py");

    /// <summary>One mesh for the class: no test changes it, and each call is a test's own.</summary>
    public sealed class Mesh : IAsyncLifetime
    {
        public ServerProcess PythonServer { get; private set; } = null!;

        public MeshService Frontend { get; private set; } = null!;

        public MeshService Orders { get; private set; } = null!;

        public GrpcChannel ToOrders { get; private set; } = null!;

        private readonly TempDirectory _temp = new();
        private LocalMesh _mesh = null!;
        private RecordingApp _frontendApp = null!;
        private GrpcEchoApp _dotnetServer = null!;
        private MeshService _payments = null!;

        public async Task InitializeAsync()
        {
            MeshBinaries.Ensure();
            _mesh = new LocalMesh(_temp.Path);
            Directory.CreateDirectory(_mesh.Data.PoliciesDirectory);
            foreach (var service in new[] { "orders", "payments" })
            {
                File.WriteAllText(Path.Combine(_mesh.Data.PoliciesDirectory, $"{service}.yaml"), $$"""
                    apiVersion: meshguard.io/v1alpha1
                    kind: AccessPolicy
                    metadata: { name: {{service}}-echo, namespace: shop }
                    spec:
                      selector: { serviceAccount: {{service}} }
                      action: allow
                      rules:
                        - name: frontend-echo
                          from: [ { identity: spiffe://mesh.local/ns/shop/sa/frontend } ]
                          to: [ { paths: ["/meshtest.Echo/Unary", "/meshtest.Echo/ServerStream", "/meshtest.Echo/ClientStream", "/meshtest.Echo/Bidi"] } ]
                    """);
            }
            await _mesh.StartControlPlaneAsync();
            PythonServer = await ServerProcess.StartAsync("/usr/bin/python3", [Script, "serve"], @"^listening (\d+)$");
            _dotnetServer = await GrpcEchoApp.StartAsync();
            _frontendApp = await RecordingApp.StartAsync("frontend");
            Orders = await _mesh.StartSidecarAsync("orders", int.Parse(PythonServer.ReadyValue, System.Globalization.CultureInfo.InvariantCulture));
            _payments = await _mesh.StartSidecarAsync("payments", _dotnetServer.Port);
            Frontend = await _mesh.StartSidecarAsync("frontend", _frontendApp.Port);
            await SidecarAdmin.WaitForServicesAsync(Frontend, 3);
            ToOrders = GrpcChannel.ForAddress("http://orders", new GrpcChannelOptions { HttpHandler = SidecarAdmin.RedirectedToOutbound(Frontend) });
        }

        public async Task DisposeAsync()
        {
            ToOrders.Dispose();
            await _mesh.DisposeAsync();
            await PythonServer.DisposeAsync();
            await _dotnetServer.DisposeAsync();
            await _frontendApp.DisposeAsync();
            _temp.Dispose();
        }
    }

    private Echo.EchoClient Orders => new(shared.ToOrders);

    [Fact]
    public async Task AGrpcNetClientMakesUnaryAndStreamingCallsToAPythonServerThroughThePair()
    {
        var unary = Orders.UnaryAsync(new EchoRequest { Text = "hello" });
        Assert.Equal("py:hello", (await unary).Text);
        // Trailers set by the server arrive, and the server saw who called, as the callee's sidecar verified it.
        var trailers = unary.GetTrailers();
        Assert.Equal("python", trailers.GetValue("x-served-by"));
        Assert.Equal("By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/shop/sa/frontend", trailers.GetValue("x-caller"));

        using var serverStream = Orders.ServerStream(new EchoRequest { Text = "s", Count = 5 });
        var streamed = new List<string>();
        await foreach (var reply in serverStream.ResponseStream.ReadAllAsync())
        {
            streamed.Add(reply.Text);
        }
        Assert.Equal(["py:s:0", "py:s:1", "py:s:2", "py:s:3", "py:s:4"], streamed);

        using var clientStream = Orders.ClientStream();
        foreach (var text in new[] { "a", "b", "c" })
        {
            await clientStream.RequestStream.WriteAsync(new EchoRequest { Text = text });
        }
        await clientStream.RequestStream.CompleteAsync();
        Assert.Equal("py:a+b+c", (await clientStream).Text);

        // Bidirectional: each reply comes back before the next request is sent, so nothing is buffered on the way.
        using var bidi = Orders.Bidi();
        foreach (var text in new[] { "x", "y", "z" })
        {
            await bidi.RequestStream.WriteAsync(new EchoRequest { Text = text });
            Assert.True(await bidi.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal("py:" + text, bidi.ResponseStream.Current.Text);
        }
        await bidi.RequestStream.CompleteAsync();
        Assert.False(await bidi.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.OK, bidi.GetStatus().StatusCode);
    }

    [Fact]
    public async Task AServersStatusCodeMessageAndTrailersArriveUnchanged()
    {
        var call = Orders.UnaryAsync(new EchoRequest { Text = "fail", Status = (int)StatusCode.NotFound });
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Equal("asked for status 5", error.Status.Detail);
        Assert.Equal("python", error.Trailers.GetValue("x-served-by"));
    }

    [Fact]
    public async Task TheCallersDeadlineReachesTheServerAndExpiresThere()
    {
        var call = Orders.UnaryAsync(new EchoRequest { Text = "soon" }, deadline: DateTime.UtcNow.AddSeconds(5));
        await call;
        // grpc-timeout went through both sidecars: the server knew how long it had.
        var remaining = int.Parse(call.GetTrailers().GetValue("x-deadline-ms")!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(remaining, 1, 5100);

        var late = Orders.UnaryAsync(new EchoRequest { Text = "late", DelayMs = 3000 }, deadline: DateTime.UtcNow.AddMilliseconds(300));
        Assert.Equal(StatusCode.DeadlineExceeded, (await Assert.ThrowsAsync<RpcException>(() => late.ResponseAsync)).StatusCode);
    }

    [Fact]
    public async Task AMethodNoPolicyAllowsEndsInPermissionDeniedAndNeverReachesTheServer()
    {
        var error = await Assert.ThrowsAsync<RpcException>(async () => await Orders.AdminAsync(new EchoRequest { Text = "root" }));
        Assert.Equal(StatusCode.PermissionDenied, error.StatusCode);

        // On the wire: HTTP 200 and grpc-status 7 in a Trailers-Only response, as gRPC expects, not a bare 403.
        using var raw = new HttpClient(SidecarAdmin.RedirectedToOutbound(shared.Frontend))
        {
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://orders/meshtest.Echo/Admin")
        {
            Content = new ByteArrayContent([0, 0, 0, 0, 0]),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/grpc");
        request.Headers.TE.ParseAdd("trailers");
        using var response = await raw.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("7", response.Headers.GetValues("grpc-status").Single());
        Assert.Equal("application/grpc", response.Content.Headers.ContentType?.MediaType);

        Assert.DoesNotContain("served Admin", shared.PythonServer.Output, StringComparison.Ordinal);
        // The callee's flow log holds the refusal under the gRPC method's path.
        Assert.True(await Eventually.TrueAsync(() => FlowLogReader.Records(shared.Orders.FlowDirectory!).Any(r =>
            FlowLogReader.Text(r, "path") == "/meshtest.Echo/Admin" && FlowLogReader.Text(r, "decision") == "deny"
            && FlowLogReader.Text(r, "protocol") == "HTTP/2")));
    }

    [Fact]
    public async Task APythonClientMakesEveryKindOfCallToAGrpcNetServerThroughThePair()
    {
        var (exit, output) = await ExternalProcess.RunAsync("/usr/bin/python3", [Script, "call", $"127.0.0.1:{shared.Frontend.OutboundPort}", "payments"]);
        Assert.True(exit == 0, output);
        var calls = output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement)
            .ToDictionary(call => call.GetProperty("call").GetString()!);
        Assert.Equal("net:hello", calls["unary"].GetProperty("reply").GetString());
        Assert.Equal("dotnet", calls["unary"].GetProperty("trailers").GetProperty("x-served-by").GetString());
        Assert.Equal(["net:s:0", "net:s:1", "net:s:2"], calls["server_stream"].GetProperty("reply").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("net:a+b+c", calls["client_stream"].GetProperty("reply").GetString());
        Assert.Equal(["net:x", "net:y"], calls["bidi"].GetProperty("reply").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("NOT_FOUND", calls["status"].GetProperty("code").GetString());
        Assert.Equal("asked for status 5", calls["status"].GetProperty("details").GetString());
        Assert.Equal("PERMISSION_DENIED", calls["admin"].GetProperty("code").GetString());
        Assert.DoesNotContain("Admin", GrpcEchoApp.Served);
    }
}
