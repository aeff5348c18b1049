using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A sidecar's memory stays bounded when many connections sit idle and when a caller floods it with requests
/// that are denied. Figures are printed for the record; the bounds asserted are per connection and per
/// request, generous enough for either sidecar build, and far below what unbounded buffering would take.
/// </summary>
[Collection(nameof(ResourceBoundsCollection))]
public sealed partial class ResourceBoundsTests : IAsyncLifetime
{
    private const int IdleConnections = 10_000;
    private const int DeniedRequests = 20_000;
    private static readonly System.Net.IPAddress ClientAddress = System.Net.IPAddress.Parse("127.0.0.2");
    private readonly TempDirectory _temp = new();
    private LocalMesh _mesh = null!;
    private RecordingApp _ordersApp = null!;
    private RecordingApp _frontendApp = null!;
    private MeshService _orders = null!;
    private MeshService _frontend = null!;

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        _mesh = new LocalMesh(_temp.Path);
        Directory.CreateDirectory(_mesh.Data.PoliciesDirectory);
        File.WriteAllText(Path.Combine(_mesh.Data.PoliciesDirectory, "orders.yaml"), """
            apiVersion: meshguard.io/v1alpha1
            kind: AccessPolicy
            metadata: { name: orders-callers, namespace: shop }
            spec:
              selector: { serviceAccount: orders }
              action: allow
              rules:
                - from: [ { identity: spiffe://mesh.local/ns/shop/sa/frontend } ]
                  to: [ { paths: ["/idle"] } ]
            """);
        await _mesh.StartControlPlaneAsync();
        _ordersApp = await RecordingApp.StartAsync("orders");
        _frontendApp = await RecordingApp.StartAsync("frontend");
        _orders = await _mesh.StartSidecarAsync("orders", _ordersApp.Port);
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

    [Fact]
    public async Task TenThousandIdleConnectionsCostTheSidecarBoundedMemoryEach()
    {
        var sockets = new List<Socket>(IdleConnections);
        try
        {
            // Warm up pools and code paths so the baseline holds what any busy sidecar holds.
            await OpenIdleAsync(sockets, 200);
            var before = await ResidentBytesAsync(_frontend);
            await OpenIdleAsync(sockets, IdleConnections - sockets.Count);
            Assert.Equal(IdleConnections, sockets.Count);
            await Task.Delay(1000);
            var metrics = await SidecarAdmin.MetricsAsync(_frontend);
            Assert.Contains($"meshguard_connections_open{{listener=\"outbound\"}} {IdleConnections}", metrics, StringComparison.Ordinal);
            var after = Resident(metrics);
            var perConnection = (after - before) / (double)(IdleConnections - 200);
            Console.WriteLine($"idle connections: {IdleConnections} open; sidecar RSS {before / 1048576.0:F0} MiB -> {after / 1048576.0:F0} MiB ({perConnection / 1024:F1} KiB per connection)");
            Assert.True(perConnection < 64 * 1024, $"{perConnection / 1024:F1} KiB per idle connection");
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }
    }

    [Fact]
    public async Task AFloodOfDeniedRequestsLeavesTheSidecarsMemoryFlat()
    {
        await SendDeniedAsync(2_000);
        var before = await ResidentBytesAsync(_orders);
        var decisionsBefore = DeniedCount(await SidecarAdmin.MetricsAsync(_orders));
        await SendDeniedAsync(DeniedRequests);
        var metrics = await SidecarAdmin.MetricsAsync(_orders);
        var after = Resident(metrics);
        var denied = DeniedCount(metrics) - decisionsBefore;
        Console.WriteLine($"deny flood: {denied} denied; callee sidecar RSS {before / 1048576.0:F0} MiB -> {after / 1048576.0:F0} MiB");
        Assert.Equal(DeniedRequests, denied);
        Assert.DoesNotContain(_ordersApp.Requests, r => r.Path == "/flood");
        // 20,000 requests: anything kept per request (a leak) would show as several MiB.
        Assert.True(after - before < 48L * 1024 * 1024, $"RSS grew {(after - before) / 1048576.0:F0} MiB over {DeniedRequests} denied requests");
    }

    private async Task SendDeniedAsync(int count)
    {
        const int Callers = 32;
        var remaining = count;
        var callers = new Task[Callers];
        for (var c = 0; c < Callers; c++)
        {
            callers[c] = Task.Run(async () =>
            {
                using var client = SidecarAdmin.ThroughOutbound(_frontend);
                while (Interlocked.Decrement(ref remaining) >= 0)
                {
                    using var response = await client.GetAsync(new Uri("http://orders/flood"));
                    Assert.Equal(System.Net.HttpStatusCode.Forbidden, response.StatusCode);
                }
            });
        }
        await Task.WhenAll(callers);
    }

    /// <summary>Connections to the outbound port that each carry one allowed request and then stay open, idle.</summary>
    private async Task OpenIdleAsync(List<Socket> sockets, int count)
    {
        var request = Encoding.ASCII.GetBytes("GET /idle HTTP/1.1\r\nHost: orders\r\n\r\n");
        var opened = new Socket[count];
        await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, cancellation) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            // From 127.0.0.2: ten thousand client ports there never collide with a port another test binds on 127.0.0.1.
            socket.Bind(new System.Net.IPEndPoint(ClientAddress, 0));
            await socket.ConnectAsync("127.0.0.1", _frontend.OutboundPort, cancellation);
            await socket.SendAsync(request, cancellation);
            var buffer = new byte[1024];
            var read = await socket.ReceiveAsync(buffer, cancellation);
            Assert.StartsWith("HTTP/1.1 200", Encoding.ASCII.GetString(buffer, 0, read), StringComparison.Ordinal);
            opened[i] = socket;
        });
        sockets.AddRange(opened);
    }

    private static async Task<long> ResidentBytesAsync(MeshService sidecar) => Resident(await SidecarAdmin.MetricsAsync(sidecar));

    private static long Resident(string metrics) =>
        (long)double.Parse(ResidentLine().Match(metrics).Groups[1].Value, CultureInfo.InvariantCulture);

    private static long DeniedCount(string metrics) =>
        DeniedLine().Match(metrics) is { Success: true } match ? long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;

    [GeneratedRegex(@"^process_resident_memory_bytes (\S+)$", RegexOptions.Multiline)]
    private static partial Regex ResidentLine();

    [GeneratedRegex(@"^meshguard_authz_decisions_total\{decision=""deny"",policy=""default-deny"",rule=""""\} (\d+)$", RegexOptions.Multiline)]
    private static partial Regex DeniedLine();
}

/// <summary>Runs alone, after the parallel classes: its figures are not disturbed, and its sockets disturb no one.</summary>
[CollectionDefinition(nameof(ResourceBoundsCollection), DisableParallelization = true)]
public sealed class ResourceBoundsCollection;
