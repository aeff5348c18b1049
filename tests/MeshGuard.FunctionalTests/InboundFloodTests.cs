using System.Net;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Floods at a sidecar's inbound door, each test on a pair of its own ("orders" limited to 4 connections per
/// listener): a full listener refuses more and still serves its admin port and the app's outbound calls; an HTTP/2
/// rapid-reset flood is cut by the sidecar's reset allowance after bounded work.
/// </summary>
public sealed class InboundFloodTests : IAsyncLifetime
{
    private const string Caller = "spiffe://mesh.local/ns/shop/sa/frontend";
    private readonly HostileInputTests.Pair _pair = new(maxConnections: 4);

    public Task InitializeAsync() => _pair.InitializeAsync();

    public Task DisposeAsync() => _pair.DisposeAsync();

    [Fact]
    public async Task ConnectionsBeyondTheLimitAreClosedAtOnceCountedAndTheAdminPortStillAnswers()
    {
        var held = new List<RawConnection>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                held.Add(await _pair.PeerAsync());
            }
            // The fifth is closed before any TLS: the handshake fails.
            await Assert.ThrowsAnyAsync<Exception>(_pair.PeerAsync);
            using var admin = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var metrics = await SidecarAdmin.MetricsAsync(_pair.Orders);
            Assert.Contains("meshguard_connections_open{listener=\"inbound\"} 4", metrics, StringComparison.Ordinal);
            Assert.Matches("meshguard_connections_refused_total\\{listener=\"inbound\"\\} [1-9]", metrics);
            Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(new Uri($"http://127.0.0.1:{_pair.Orders.AdminPort}/ready"))).StatusCode);

            // Outbound is bounded apart: the app can still call out while peers fill inbound.
            using var outbound = SidecarAdmin.ThroughOutbound(_pair.Orders);
            Assert.Equal(HttpStatusCode.OK, (await outbound.GetAsync(new Uri("http://frontend/while-full"))).StatusCode);

            // One closes; a new peer is served again.
            await held[0].DisposeAsync();
            held.RemoveAt(0);
            await Task.Delay(200);
            await using var again = await _pair.PeerAsync();
            Assert.StartsWith("HTTP/1.1 200", await HostileInputTests.Pair.ExchangeAsync(again, "GET /after-full HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n"), StringComparison.Ordinal);
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
    public async Task AnHttp2RapidResetFloodIsCutByTheSidecarsOwnAllowanceAfterBoundedWorkAndOtherPeersAreStillServed()
    {
        // CVE-2023-44487: streams opened and cancelled at once cost the server work but never count against its
        // stream limit. The sidecar closes a connection whose cancelled-before-answer streams outnumber its answered
        // ones by more than the allowance; the test reads how much got through first.
        const int Flood = 20_000;
        const int allowance = 100; // the sidecar's PrematureResetLimit.Allowance
        var leaf = _pair.Ca.IssueLeaf(Caller);
        File.WriteAllText(_pair.Temp.Combine("rr-chain.pem"), _pair.Ca.ChainPem(leaf));
        File.WriteAllText(_pair.Temp.Combine("rr-key.pem"), leaf.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        var script = Path.Combine(AppContext.BaseDirectory, "Apps", "rapid_reset.py");
        var (exit, output) = await ExternalProcess.RunAsync("/usr/bin/python3", [script, "127.0.0.1", _pair.Orders.InboundPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            _pair.Temp.Combine("rr-chain.pem"), _pair.Temp.Combine("rr-key.pem"), _pair.Mesh.Data.TrustBundle, Flood.ToString(System.Globalization.CultureInfo.InvariantCulture), "orders"],
            timeout: TimeSpan.FromSeconds(60));
        Assert.True(exit == 0, output);
        using var result = System.Text.Json.JsonDocument.Parse(output.Trim().Split('\n')[^1]);
        var sent = result.RootElement.GetProperty("sent").GetInt32();
        Assert.True(result.RootElement.GetProperty("closed").GetBoolean() || result.RootElement.GetProperty("goaway").ValueKind == System.Text.Json.JsonValueKind.String, output);
        Assert.True(sent < Flood, $"the sidecar took all {Flood} reset streams: {output}");
        await Task.Delay(500);

        // The sidecar's own bound cut it, not a heuristic that depends on how fast its handlers are: once, after the
        // allowance (a few more may be counted by handlers that ended at the same moment on other threads).
        var metrics = await SidecarAdmin.MetricsAsync(_pair.Orders);
        Assert.Contains("meshguard_inbound_connections_cut_for_resets_total 1\n", metrics, StringComparison.Ordinal);
        var counted = long.Parse(System.Text.RegularExpressions.Regex.Match(metrics, "meshguard_inbound_premature_resets_total (\\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(counted, allowance + 1, allowance + 32);
        var reachedApp = _pair.OrdersApp.Requests.Count(r => r.Path.StartsWith("/rapid/", StringComparison.Ordinal));
        Console.WriteLine($"rapid reset: client wrote {sent} streams before it saw the close; {counted} counted as cancelled before an answer; {reachedApp} reached the app");
        Assert.True(reachedApp <= 2 * allowance + 1, $"{reachedApp} requests reached the app from a flood cut after {allowance} resets");

        // Another peer is served as usual.
        await using var other = await _pair.PeerAsync();
        Assert.StartsWith("HTTP/1.1 200", await HostileInputTests.Pair.ExchangeAsync(other, "GET /after-flood HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n"), StringComparison.Ordinal);
    }
}
