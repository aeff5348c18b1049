using System.Net;
using System.Text.Json;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// App teams' policies, enforced by the callee's sidecar from signed snapshots: changes, broken files,
/// a control plane that goes away, a sidecar that restarts meanwhile, and meshctl's answers.
/// </summary>
public sealed class PolicyEnforcementTests : IAsyncLifetime
{
    private const string OrdersPolicy = """
        apiVersion: meshguard.io/v1alpha1
        kind: AccessPolicy
        metadata: { name: orders-callers, namespace: shop }
        spec:
          selector: { serviceAccount: orders }
          action: allow
          rules:
            - name: frontend-reads
              from: [ { identity: spiffe://mesh.local/ns/shop/sa/frontend } ]
              to: [ { methods: [GET], paths: ["/orders/*"] } ]
        """;

    private readonly TempDirectory _temp = new();
    private LocalMesh _mesh = null!;
    private RecordingApp _ordersApp = null!;
    private RecordingApp _otherApp = null!;
    private MeshService _orders = null!;
    private MeshService _frontend = null!;
    private MeshService _payments = null!;
    private ControlPlaneEndpoints _cp = null!;

    private string PolicyFile => Path.Combine(_mesh.Data.PoliciesDirectory, "orders.yaml");

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        _mesh = new LocalMesh(_temp.Path);
        Directory.CreateDirectory(_mesh.Data.PoliciesDirectory);
        File.WriteAllText(PolicyFile, OrdersPolicy);
        _cp = await _mesh.StartControlPlaneAsync();
        _ordersApp = await RecordingApp.StartAsync("orders");
        _otherApp = await RecordingApp.StartAsync("other");
        _orders = await _mesh.StartSidecarAsync("orders", _ordersApp.Port);
        _frontend = await _mesh.StartSidecarAsync("frontend", _otherApp.Port);
        _payments = await _mesh.StartSidecarAsync("payments", _otherApp.Port);
        await SidecarAdmin.WaitForServicesAsync(_frontend, 3);
        await SidecarAdmin.WaitForServicesAsync(_payments, 3);
    }

    public async Task DisposeAsync()
    {
        await _mesh.DisposeAsync();
        await _ordersApp.DisposeAsync();
        await _otherApp.DisposeAsync();
        _temp.Dispose();
    }

    private static async Task<(HttpStatusCode Status, string Body)> CallAsync(MeshService caller, string method, string url)
    {
        using var client = SidecarAdmin.ThroughOutbound(caller);
        using var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), new Uri(url)));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AllowedCallsReachTheAppAndDeniedOnesGetA403ThatNamesNoPolicy()
    {
        Assert.Equal(HttpStatusCode.OK, (await CallAsync(_frontend, "GET", "http://orders/orders/1")).Status);

        var (status, body) = await CallAsync(_frontend, "POST", "http://orders/orders/2");
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.Equal("forbidden\n", body);
        var (paymentsStatus, _) = await CallAsync(_payments, "GET", "http://orders/orders/3");
        Assert.Equal(HttpStatusCode.Forbidden, paymentsStatus);

        Assert.Contains(_ordersApp.Requests, r => r.Path == "/orders/1");
        Assert.DoesNotContain(_ordersApp.Requests, r => r.Path is "/orders/2" or "/orders/3");

        // Metrics name what decided, on the sidecar's loopback metrics port.
        var metrics = await SidecarAdmin.MetricsAsync(_orders);
        Assert.Contains("meshguard_authz_decisions_total{decision=\"allow\",policy=\"shop/orders-callers\",rule=\"frontend-reads\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("meshguard_authz_decisions_total{decision=\"deny\",policy=\"default-deny\",rule=\"\"} 2", metrics, StringComparison.Ordinal);
        Assert.Contains("meshguard_config_stale 0", metrics, StringComparison.Ordinal);
        Assert.True(await Eventually.TrueAsync(() => _orders.Sidecar!.ReadLog().Contains("denied spiffe://mesh.local/ns/shop/sa/frontend POST /orders/2 by policy (none) rule (default deny)", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task APolicyChangeAppliesWithinASecondWithoutFailingSteadyTraffic()
    {
        using var steadyStop = new CancellationTokenSource();
        var failures = 0;
        var steadyCalls = 0;
        var steady = Task.Run(async () =>
        {
            while (!steadyStop.IsCancellationRequested)
            {
                var (status, _) = await CallAsync(_frontend, "GET", $"http://orders/orders/steady-{steadyCalls}");
                if (status != HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref failures);
                }
                Interlocked.Increment(ref steadyCalls);
            }
        });
        await Task.Delay(500);
        Assert.Equal(HttpStatusCode.Forbidden, (await CallAsync(_payments, "GET", "http://orders/orders/9")).Status);

        // Let payments read orders too. How long it took is read off orders' sidecar (when it applied the
        // snapshot), not off this test's polling, whose own delays on a busy machine are not the mesh's.
        var written = DateTimeOffset.UtcNow;
        File.WriteAllText(PolicyFile, OrdersPolicy + """

                - name: payments-reads
                  from: [ { identity: spiffe://mesh.local/ns/shop/sa/payments } ]
                  to: [ { methods: [GET] } ]
            """);
        var applied = await Eventually.TrueAsync(
            async () => (await CallAsync(_payments, "GET", "http://orders/orders/9")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(5));
        var elapsed = SidecarAdmin.Config(_orders).GetProperty("applied_at").GetDateTimeOffset() - written;
        await Task.Delay(300);
        await steadyStop.CancelAsync();
        await steady;

        Assert.True(applied, "the new policy never applied");
        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"the policy change took {elapsed.TotalMilliseconds:F0} ms to apply");
        Assert.Equal(0, failures);
        Assert.True(steadyCalls > 10, $"only {steadyCalls} steady calls");
    }

    [Fact]
    public async Task AStateDirectoryThatCanNoLongerBeWrittenCostsOnlyTheCopyOnDiskAndIsCountedAndLogged()
    {
        // Orders' state directory becomes a plain file: every write of its state fails from here on, as on a broken disk.
        var state = _mesh.StateDirectoryOf(_orders);
        Directory.Move(state, state + ".moved");
        await File.WriteAllTextAsync(state, "");

        File.WriteAllText(PolicyFile, OrdersPolicy + """

                - name: payments-reads
                  from: [ { identity: spiffe://mesh.local/ns/shop/sa/payments } ]
                  to: [ { methods: [GET] } ]
            """);

        // The new snapshot is in force although it could not be kept, and the failed write is counted and named.
        Assert.True(await Eventually.TrueAsync(
            async () => (await CallAsync(_payments, "GET", "http://orders/orders/state-lost")).Status == HttpStatusCode.OK, TimeSpan.FromSeconds(5)),
            "the new policy never applied");
        Assert.True(await Eventually.TrueAsync(
            async () => SidecarAdmin.MetricValue(await SidecarAdmin.MetricsAsync(_orders), "meshguard_state_file_write_failures_total") >= 1),
            "no failed state write counted");
        Assert.Contains("snapshot.cms in the state directory", _orders.Sidecar!.ReadLog(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await CallAsync(_frontend, "GET", "http://orders/orders/still-served")).Status);
        Assert.Contains(_ordersApp.Requests, r => r.Path == "/orders/still-served");
    }

    [Fact]
    public async Task ABrokenPolicyFileIsRefusedAndThePreviousPolicyStaysInForce()
    {
        var before = SidecarAdmin.Config(_orders).GetProperty("version").GetInt64();
        File.WriteAllText(PolicyFile, OrdersPolicy.Replace("methods: [GET]", "methods: [GET, FETCH]", StringComparison.Ordinal));

        using var admin = new HttpClient();
        var readyz = "";
        Assert.True(await Eventually.TrueAsync(() =>
        {
            readyz = admin.GetStringAsync(new Uri($"http://127.0.0.1:{_cp.AdminPort}/readyz")).GetAwaiter().GetResult();
            return readyz.Contains("refused: policies/orders.yaml:", StringComparison.Ordinal);
        }), readyz);
        Assert.Contains("unknown method 'FETCH'", readyz, StringComparison.Ordinal);

        var (exit, status) = await Cli.RunAsync("meshctl", "policy", "status", "--data", _mesh.Data.Root);
        Assert.Equal(0, exit);
        Assert.Contains("REFUSED  policies/orders.yaml: shop/orders-callers (last good version)", status, StringComparison.Ordinal);
        Assert.Contains("unknown method 'FETCH'", status, StringComparison.Ordinal);

        // The sidecar still enforces the last good version.
        Assert.Equal(HttpStatusCode.OK, (await CallAsync(_frontend, "GET", "http://orders/orders/still-ok")).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await CallAsync(_payments, "GET", "http://orders/orders/still-denied")).Status);
        Assert.Contains("policy document refused, its last good version stays in force", _mesh.Processes[0].ReadLog(), StringComparison.Ordinal);
        Assert.Equal(before, SidecarAdmin.Config(_orders).GetProperty("version").GetInt64());
    }

    [Fact]
    public async Task WithTheControlPlaneGoneEnforcementStaysAndARestartedSidecarEnforcesItsDiskSnapshot()
    {
        var controlPlane = _mesh.Processes[0];
        Assert.True(await controlPlane.StopAsync(TimeSpan.FromSeconds(10)));
        Assert.True(await Eventually.TrueAsync(() => SidecarAdmin.Config(_orders).GetProperty("stale").GetBoolean()));

        Assert.Equal(HttpStatusCode.OK, (await CallAsync(_frontend, "GET", "http://orders/orders/cp-down")).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await CallAsync(_payments, "GET", "http://orders/orders/cp-down")).Status);

        // Restarted without a join token while the control plane is down: stored SVID, disk snapshot.
        _orders = await _mesh.RestartSidecarAsync(_orders);
        var config = SidecarAdmin.Config(_orders);
        Assert.Equal("disk", config.GetProperty("source").GetString());
        Assert.True(config.GetProperty("stale").GetBoolean());
        Assert.Equal(HttpStatusCode.OK, (await CallAsync(_frontend, "GET", "http://orders/orders/after-restart")).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await CallAsync(_payments, "GET", "http://orders/orders/after-restart")).Status);
        Assert.Contains(_ordersApp.Requests, r => r.Path == "/orders/after-restart");

        // The control plane comes back on the same ports and data: sidecars reconnect, the mesh is intact.
        await _mesh.StartControlPlaneAsync(ports: [_cp.BootstrapPort, _cp.GrpcPort, _cp.AdminPort, _cp.WebhookPort]);
        Assert.True(await Eventually.TrueAsync(() => SidecarAdmin.Config(_orders).GetProperty("source").GetString() == "stream", TimeSpan.FromSeconds(20)));
        Assert.False(SidecarAdmin.Config(_orders).GetProperty("stale").GetBoolean());
        Assert.Equal(3, SidecarAdmin.Config(_frontend).GetProperty("services").GetInt32());
        Assert.Equal(HttpStatusCode.OK, (await CallAsync(_frontend, "GET", "http://orders/orders/cp-back")).Status);
    }

    [Fact]
    public async Task MeshctlAuthzCheckAnswersWithTheDecidingRuleAndItsExitCode()
    {
        string[] Args(string from, string method, string path) =>
            ["authz", "check", "--data", _mesh.Data.Root, "--from", $"spiffe://mesh.local/ns/shop/sa/{from}", "--to", "spiffe://mesh.local/ns/shop/sa/orders", "--port", "8080", "--method", method, "--path", path];

        var (allowExit, allow) = await Cli.RunAsync("meshctl", Args("frontend", "GET", "/orders/1"));
        Assert.Equal(0, allowExit);
        Assert.StartsWith("ALLOW", allow, StringComparison.Ordinal);
        Assert.Contains("decided:  policy shop/orders-callers rule frontend-reads", allow, StringComparison.Ordinal);

        var (denyExit, deny) = await Cli.RunAsync("meshctl", Args("payments", "GET", "/orders/1"));
        Assert.Equal(1, denyExit);
        Assert.StartsWith("DENY", deny, StringComparison.Ordinal);

        var (badExit, bad) = await Cli.RunAsync("meshctl", ["authz", "check", "--data", _mesh.Data.Root, "--from", "spiffe://Mesh/x", "--to", "spiffe://mesh.local/ns/shop/sa/orders"]);
        Assert.Equal(2, badExit);
        Assert.Contains("--from 'spiffe://Mesh/x'", bad, StringComparison.Ordinal);

        // What-if: a proposed directory with a mistake is bad input, not an answer.
        using var proposed = new TempDirectory();
        File.WriteAllText(proposed.Combine("orders.yaml"), OrdersPolicy.Replace("ports", "portz", StringComparison.Ordinal).Replace("methods: [GET]", "methods: [GOT]", StringComparison.Ordinal));
        var (whatIfExit, whatIf) = await Cli.RunAsync("meshctl", ["authz", "check", "--policies", proposed.Path, "--from", "spiffe://mesh.local/ns/shop/sa/frontend", "--to", "spiffe://mesh.local/ns/shop/sa/orders"]);
        Assert.Equal(2, whatIfExit);
        Assert.Contains("orders.yaml:10:", whatIf, StringComparison.Ordinal);

        var (lintExit, lint) = await Cli.RunAsync("meshctl", "policy", "lint", proposed.Path);
        Assert.Equal(1, lintExit);
        Assert.Contains("unknown method 'GOT'", lint, StringComparison.Ordinal);
    }
}
