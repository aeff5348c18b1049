using System.Net;
using System.Net.Sockets;
using System.Text;
using MeshGuard.Ctl.Demo;
using MeshGuard.FlowLog;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>Opaque TCP ports: tunnelled over mTLS between sidecars and authorized once per connection.</summary>
public sealed class OpaqueTcpTests(OpaqueTcpTests.Pair pair) : IClassFixture<OpaqueTcpTests.Pair>
{
    /// <summary>
    /// One mesh for the class (redis, an echo and a greeting server behind "orders"; "frontend" and "payments" with
    /// mapped ports): no test changes it, and each test counts only what its own connections did.
    /// </summary>
    public sealed class Pair : IAsyncLifetime
    {
        private readonly TempDirectory _temp = new();
        private TcpListener _echo = null!;
        private int _echoConnections;
        private readonly CancellationTokenSource _stop = new();
        private TcpListener _greeter = null!;
        private int _greeterPort;
        private ServerProcess _redis = null!;

        public async Task InitializeAsync()
        {
            MeshBinaries.Ensure();
            _echo = new TcpListener(IPAddress.Loopback, 0);
            _echo.Start();
            EchoPort = ((IPEndPoint)_echo.LocalEndpoint).Port;
            _ = EchoAsync();

            var ports = LocalMesh.FreePorts(10);
            (GreeterLocal, GreeterOpaqueLocal, StrayLocal) = (ports[6], ports[7], ports[8]);
            _greeter = new TcpListener(IPAddress.Loopback, 0);
            _greeter.Start();
            _greeterPort = ((IPEndPoint)_greeter.LocalEndpoint).Port;
            _ = GreetAsync();
            (RedisPort, FrontendRedis, PaymentsRedis) = (ports[3], ports[4], ports[5]);
            // Debian's redis-server as the app on a port declared opaque: nothing persisted, loopback only.
            _redis = await ServerProcess.StartAsync("redis-server",
                ["--port", $"{RedisPort}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _temp.Path],
                "Ready to accept connections");
            Mesh = new LocalMesh(_temp.Path);
            Directory.CreateDirectory(Mesh.Data.PoliciesDirectory);
            File.WriteAllText(Path.Combine(Mesh.Data.PoliciesDirectory, "db.yaml"), $$"""
                apiVersion: meshguard.io/v1alpha1
                kind: AccessPolicy
                metadata: { name: db-clients, namespace: shop }
                spec:
                  selector: { serviceAccount: orders }
                  action: allow
                  rules:
                    - name: frontend-db
                      from: [ { identity: spiffe://mesh.local/ns/shop/sa/frontend } ]
                      to: [ { ports: [{{EchoPort}}, {{RedisPort}}, {{_greeterPort}}, {{ports[9]}}] } ]
                """);
            await Mesh.StartControlPlaneAsync();
            App = await RecordingApp.StartAsync("orders");
            (FrontendLocal, PaymentsLocal, UndeclaredLocal) = (ports[0], ports[1], ports[2]);
            Orders = await Mesh.StartSidecarAsync("orders", App.Port, extraArguments: ["--opaque-ports", $"{EchoPort},{RedisPort},{_greeterPort}"]);
            var frontend = await Mesh.StartSidecarAsync("frontend", App.Port, extraArguments: [
                "--outbound-tcp",
                $"{FrontendLocal}=orders:{EchoPort},{UndeclaredLocal}=orders:{App.Port},{FrontendRedis}=orders:{RedisPort}," +
                $"{GreeterLocal}=orders:{_greeterPort},{GreeterOpaqueLocal}=orders:{_greeterPort}/opaque,{StrayLocal}=orders:{ports[9]}",
                "--protocol-detect-timeout", "1"]);
            FrontendFlows = frontend.FlowDirectory!;
            var payments = await Mesh.StartSidecarAsync("payments", App.Port,
                extraArguments: ["--outbound-tcp", $"{PaymentsLocal}=orders:{EchoPort},{PaymentsRedis}=orders:{RedisPort}"]);
            foreach (var sidecar in new[] { frontend, payments })
            {
                await SidecarAdmin.WaitForServicesAsync(sidecar, 3);
            }
        }

        private async Task EchoAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                Socket socket;
                try
                {
                    socket = await _echo.AcceptSocketAsync(_stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                Interlocked.Increment(ref _echoConnections);
                _ = Task.Run(async () =>
                {
                    using (socket)
                    {
                        var buffer = new byte[1024];
                        int read;
                        while ((read = await socket.ReceiveAsync(buffer)) > 0)
                        {
                            await socket.SendAsync(buffer.AsMemory(0, read));
                        }
                    }
                });
            }
        }

        /// <summary>A protocol whose server speaks first (as SMTP's, MySQL's): a greeting on accept, then an echo.</summary>
        private async Task GreetAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                Socket socket;
                try
                {
                    socket = await _greeter.AcceptSocketAsync(_stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                _ = Task.Run(async () =>
                {
                    using (socket)
                    {
                        await socket.SendAsync("220 greeter ready\r\n"u8.ToArray());
                        var buffer = new byte[1024];
                        int read;
                        while ((read = await socket.ReceiveAsync(buffer)) > 0)
                        {
                            await socket.SendAsync(buffer.AsMemory(0, read));
                        }
                    }
                });
            }
        }

        public async Task DisposeAsync()
        {
            await _stop.CancelAsync();
            _echo.Stop();
            _greeter.Stop();
            await Mesh.DisposeAsync();
            await App.DisposeAsync();
            await _redis.DisposeAsync();
            _temp.Dispose();
            _stop.Dispose();
        }

        public int FrontendLocal { get; private set; }
        public int PaymentsLocal { get; private set; }
        public int UndeclaredLocal { get; private set; }
        public int EchoPort { get; private set; }
        public int StrayLocal { get; private set; }
        public int GreeterLocal { get; private set; }
        public int GreeterOpaqueLocal { get; private set; }
        public int FrontendRedis { get; private set; }
        public int RedisPort { get; private set; }
        public int PaymentsRedis { get; private set; }
        public string FrontendFlows { get; private set; } = "";
        public MeshService Orders { get; private set; } = null!;
        public RecordingApp App { get; private set; } = null!;
        public LocalMesh Mesh { get; private set; } = null!;
        /// <summary>Connections the echo server accepted so far.</summary>
        public int EchoConnections => Volatile.Read(ref _echoConnections);
    }

    /// <summary>Sends a line through 127.0.0.1:port and returns what came back (empty if the connection was closed).</summary>
    private static async Task<string> RoundTripAsync(int port, string text)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        var stream = client.GetStream();
        try
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(text));
            var buffer = new byte[text.Length];
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
            }
            return Encoding.ASCII.GetString(buffer, 0, total);
        }
        catch (IOException)
        {
            return "";
        }
    }

    [Fact]
    public async Task AnAllowedCallerGetsABytePipeToTheAppsPort()
    {
        var before = pair.EchoConnections;
        Assert.Equal("hello over mtls", await RoundTripAsync(pair.FrontendLocal, "hello over mtls"));
        Assert.Equal(before + 1, pair.EchoConnections);
    }

    [Fact]
    public async Task ACallerThatNoRuleAllowsIsCutBeforeTheAppIsDialled()
    {
        var before = pair.EchoConnections;
        Assert.Equal("", await RoundTripAsync(pair.PaymentsLocal, "let me in"));
        await Task.Delay(200);
        Assert.Equal(before, pair.EchoConnections);
        // The refused connection is in the callee's flow log, with what decided.
        Assert.True(await Eventually.TrueAsync(() => FlowLogReader.Records(pair.Orders.FlowDirectory!)
            .Any(r => FlowLogReader.Text(r, "protocol") == "tcp" && FlowLogReader.Text(r, "decision") == "deny"
                && FlowLogReader.Number(r, "dest_port") == pair.EchoPort
                && FlowLogReader.Text(r, "source_id") == "spiffe://mesh.local/ns/shop/sa/payments")), TcpRecords(pair.Orders.FlowDirectory!));
    }

    [Fact]
    public async Task HttpOnAMappedPortIsDetectedAndAuthorizedPerRequest()
    {
        // frontend may open TCP to orders' opaque ports, but no rule lets it make HTTP requests: 403, and the app sees nothing.
        var answer = await RoundTripAsync(pair.UndeclaredLocal, "GET /detected HTTP/1.1\r\nHost: anything\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 403", answer, StringComparison.Ordinal);
        Assert.DoesNotContain(pair.App.Requests, r => r.Path == "/detected");
        Assert.True(await Eventually.TrueAsync(() => FlowLogReader.Records(pair.Orders.FlowDirectory!).Any(r =>
            FlowLogReader.Text(r, "path") == "/detected" && FlowLogReader.Text(r, "decision") == "deny")));
    }

    /// <summary>A mesh peer with a valid SVID opens meshguard/tcp itself, naming <paramref name="port"/>; returns what came back (at most as much as it sent).</summary>
    private async Task<string> OpaqueFromPeerAsync(int port, string text)
    {
        var data = pair.Mesh.Data;
        var ca = TestCa.FromFiles(LocalMesh.TrustDomain, data.RootCertificate, data.RootKey, data.IntermediateCertificate, data.IntermediateKey);
        await using var peer = await MeshPeerTls.ConnectAsync(pair.Orders.InboundPort, ca.IssueLeaf("spiffe://mesh.local/ns/shop/sa/frontend"), ca.Intermediates,
            new System.Net.Security.SslApplicationProtocol("meshguard/tcp"));
        var tls = peer.Stream;
        var received = new MemoryStream();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            // A sidecar that refuses the port may reset the connection before the text is written: nothing came back.
            await tls.WriteAsync(new[] { (byte)(port >> 8), (byte)port });
            await tls.WriteAsync(Encoding.ASCII.GetBytes(text));
            int read;
            while (received.Length < text.Length && (read = await tls.ReadAsync(buffer, timeout.Token)) > 0)
            {
                received.Write(buffer, 0, read);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
        }
        return Encoding.ASCII.GetString(received.ToArray());
    }

    [Fact]
    public async Task APeerOpeningOpaqueTcpToTheAppsHttpPortIsCutAndTheAppSeesNothing()
    {
        // Raw bytes to an HTTP port would skip every per-request check and carry the peer's own x-forwarded-client-cert.
        var answer = await OpaqueFromPeerAsync(pair.App.Port, "GET /raw HTTP/1.1\r\nHost: orders\r\nx-forwarded-client-cert: By=x;URI=spiffe://mesh.local/ns/kube-system/sa/admin\r\n\r\n");
        Assert.Equal("", answer);
        Assert.DoesNotContain(pair.App.Requests, r => r.Path == "/raw");
    }

    [Fact]
    public async Task APeerOpeningOpaqueTcpToADeclaredPortIsPiped() =>
        Assert.Equal("raw echo", await OpaqueFromPeerAsync(pair.EchoPort, "raw echo"));

    [Fact]
    public async Task BytesThatAreNotHttpForAPortNeitherDeclaredOpaqueNorTheAppsAreRefused()
    {
        Assert.Equal("", await RoundTripAsync(pair.StrayLocal, "hello stray port"));
    }

    [Fact]
    public async Task AServerFirstProtocolIsCarriedAsOpaqueOnceDetectionTimesOutOrAtOnceWhenDeclared()
    {
        foreach (var local in new[] { pair.GreeterLocal, pair.GreeterOpaqueLocal })
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, local);
            var stream = client.GetStream();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var greeting = new byte["220 greeter ready\r\n".Length];
            await stream.ReadExactlyAsync(greeting, timeout.Token);
            Assert.Equal("220 greeter ready\r\n", Encoding.ASCII.GetString(greeting));
            await stream.WriteAsync("EHLO mesh\r\n"u8.ToArray(), timeout.Token);
            var echo = new byte["EHLO mesh\r\n".Length];
            await stream.ReadExactlyAsync(echo, timeout.Token);
            Assert.Equal("EHLO mesh\r\n", Encoding.ASCII.GetString(echo));
        }
    }

    private static Task<(int ExitCode, string Output)> RedisCliAsync(int port, params string[] command) =>
        ExternalProcess.RunAsync("redis-cli", ["-h", "127.0.0.1", "-p", $"{port}", .. command], timeout: TimeSpan.FromSeconds(30));

    private async Task<long> RedisConnectionsReceivedAsync()
    {
        var (_, info) = await RedisCliAsync(pair.RedisPort, "INFO", "stats");
        var line = info.Split('\n').Single(l => l.StartsWith("total_connections_received:", StringComparison.Ordinal));
        return long.Parse(line.AsSpan(line.IndexOf(':') + 1).Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task RedisCliTalksToRedisServerThroughThePairAndEachConnectionIsRecordedWithItsBytes()
    {
        Assert.Equal("OK", (await RedisCliAsync(pair.FrontendRedis, "SET", "mesh", "carried over mtls")).Output.Trim());
        Assert.Equal("carried over mtls", (await RedisCliAsync(pair.FrontendRedis, "GET", "mesh")).Output.Trim());
        // A value of 1 MiB, read back whole: bytes, not lines, are carried.
        var big = new string('r', 1 << 20);
        Assert.Equal("OK", (await ExternalProcess.RunAsync("redis-cli", ["-h", "127.0.0.1", "-p", $"{pair.FrontendRedis}", "-x", "SET", "big"], input: big)).Output.Trim());
        Assert.Equal($"{1 << 20}", (await RedisCliAsync(pair.FrontendRedis, "STRLEN", "big")).Output.Trim());

        // Both sidecars record each connection with the bytes each way (bytes_in: the caller's direction).
        bool BigUpload(System.Text.Json.JsonElement r) => FlowLogReader.Text(r, "protocol") == "tcp"
            && FlowLogReader.Number(r, "dest_port") == pair.RedisPort && FlowLogReader.Number(r, "bytes_in") > (1 << 20) && FlowLogReader.Number(r, "bytes_out") > 0;
        Assert.True(await Eventually.TrueAsync(() => FlowLogReader.Records(pair.Orders.FlowDirectory!).Any(r => BigUpload(r)
            && FlowLogReader.Text(r, "direction") == "inbound" && FlowLogReader.Text(r, "decision") == "allow"
            && FlowLogReader.Text(r, "source_id") == "spiffe://mesh.local/ns/shop/sa/frontend")), TcpRecords(pair.Orders.FlowDirectory!));
        Assert.True(await Eventually.TrueAsync(() => FlowLogReader.Records(pair.FrontendFlows).Any(r => BigUpload(r)
            && FlowLogReader.Text(r, "direction") == "outbound" && FlowLogReader.Text(r, "dest_id") == "spiffe://mesh.local/ns/shop/sa/orders")), TcpRecords(pair.FrontendFlows));
    }

    /// <summary>What a failed expectation about TCP records saw instead.</summary>
    private static string TcpRecords(string directory) =>
        "tcp records of " + directory + ":\n" + string.Join('\n', FlowLogReader.Records(directory)
            .Where(r => FlowLogReader.Text(r, "protocol") == "tcp").Select(r => r.GetRawText()));

    [Fact]
    public async Task ARedisClientNoRuleAllowsIsCutAtConnectAndRedisNeverSeesTheConnection()
    {
        var before = await RedisConnectionsReceivedAsync();
        var (_, output) = await RedisCliAsync(pair.PaymentsRedis, "PING");
        Assert.DoesNotContain("PONG", output, StringComparison.Ordinal);
        // Only the second INFO connection is new: the refused one never reached redis.
        Assert.Equal(before + 1, await RedisConnectionsReceivedAsync());
    }
}
