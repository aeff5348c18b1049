using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// WebSockets through the pair, authorized at the upgrade: an HTTP/1.1 Upgrade from Debian's python3-websockets,
/// and RFC 8441 (extended CONNECT over HTTP/2) from .NET's ClientWebSocket. Between the sidecars a WebSocket
/// always rides the HTTP/2 leg as RFC 8441; each app gets the version its caller used.
/// </summary>
public sealed class WebSocketTests(WebSocketTests.Mesh shared) : IClassFixture<WebSocketTests.Mesh>
{
    private static readonly string Script = Path.Combine(AppContext.BaseDirectory, "Apps", "ws_client.py");

    /// <summary>One mesh for the class: no test changes it, and each socket is a test's own.</summary>
    public sealed class Mesh : IAsyncLifetime
    {
        public WebSocketApp OrdersApp { get; private set; } = null!;

        public MeshService Frontend { get; private set; } = null!;

        private readonly TempDirectory _temp = new();
        private LocalMesh _mesh = null!;
        private WebSocketApp _paymentsApp = null!;
        private RecordingApp _frontendApp = null!;

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
                    metadata: { name: {{service}}-sockets, namespace: shop }
                    spec:
                      selector: { serviceAccount: {{service}} }
                      action: allow
                      rules:
                        - name: frontend-sockets
                          from: [ { identity: spiffe://mesh.local/ns/shop/sa/frontend } ]
                          to: [ { methods: [GET], paths: ["/ws/*"] } ]
                    """);
            }
            await _mesh.StartControlPlaneAsync();
            OrdersApp = await WebSocketApp.StartAsync(HttpProtocols.Http1);
            _paymentsApp = await WebSocketApp.StartAsync(HttpProtocols.Http2);
            _frontendApp = await RecordingApp.StartAsync("frontend");
            await _mesh.StartSidecarAsync("orders", OrdersApp.Port);
            await _mesh.StartSidecarAsync("payments", _paymentsApp.Port);
            Frontend = await _mesh.StartSidecarAsync("frontend", _frontendApp.Port);
            await SidecarAdmin.WaitForServicesAsync(Frontend, 3);
        }

        public async Task DisposeAsync()
        {
            await _mesh.DisposeAsync();
            await OrdersApp.DisposeAsync();
            await _paymentsApp.DisposeAsync();
            await _frontendApp.DisposeAsync();
            _temp.Dispose();
        }
    }

    private async Task<JsonElement> PythonClientAsync(string url, params string[] messages)
    {
        var (exit, output) = await ExternalProcess.RunAsync("/usr/bin/python3", [Script, $"{shared.Frontend.OutboundPort}", url, .. messages]);
        Assert.True(exit == 0, output);
        return JsonDocument.Parse(output).RootElement.Clone();
    }

    [Fact]
    public async Task AnHttp11UpgradeFromAPythonClientCarriesMessagesBothWays()
    {
        var result = await PythonClientAsync("ws://orders/ws/chat", "one", "two");
        var received = result.GetProperty("received").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Equal("hello HTTP/1.1 By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/shop/sa/frontend", received[0]);
        Assert.Equal(["echo:one", "echo:two"], received.Skip(1));
        Assert.Equal(1000, result.GetProperty("close_code").GetInt32());
    }

    [Fact]
    public async Task AWebSocketOverHttp2ReachesAnHttp2AppAsRfc8441()
    {
        using var socket = new ClientWebSocket();
        socket.Options.HttpVersion = HttpVersion.Version20;
        socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        socket.Options.CollectHttpResponseDetails = true;
        using var invoker = new HttpMessageInvoker(SidecarAdmin.RedirectedToOutbound(shared.Frontend));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await socket.ConnectAsync(new Uri("ws://payments/ws/h2"), invoker, timeout.Token);
        Assert.Equal(HttpStatusCode.OK, socket.HttpStatusCode);

        var buffer = new byte[4096];
        async Task<string> ReceiveAsync() => Encoding.UTF8.GetString(buffer, 0, (await socket.ReceiveAsync(buffer, timeout.Token)).Count);
        Assert.Equal("hello HTTP/2 By=spiffe://mesh.local/ns/shop/sa/payments;URI=spiffe://mesh.local/ns/shop/sa/frontend", await ReceiveAsync());
        await socket.SendAsync("over h2"u8.ToArray(), WebSocketMessageType.Text, true, timeout.Token);
        Assert.Equal("echo:over h2", await ReceiveAsync());
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
    }

    [Fact]
    public async Task AnUpgradeNoPolicyAllowsIsRefusedWith403AndNeverReachesTheApp()
    {
        var before = shared.OrdersApp.Accepted;
        var result = await PythonClientAsync("ws://orders/private/socket", "secret");
        Assert.Equal(403, result.GetProperty("refused").GetInt32());
        Assert.Equal(before, shared.OrdersApp.Accepted);
    }
}
