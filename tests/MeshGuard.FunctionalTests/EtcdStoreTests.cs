using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Ctl.Demo;
using MeshGuard.Etcd;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;
using Xunit.Abstractions;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Two control-plane replicas sharing a real etcd (Debian's etcd-server, started here): one CA sealed in etcd,
/// join tokens spent once across replicas, policies pushed with meshctl reaching sidecars of both, a replica
/// lost under load, and etcd itself restarted; and sharing a PostgreSQL flow store (Debian's postgresql) that
/// keeps each sidecar's whole log while a replica is lost during uploads. Their subject is the control plane's store, so the second pass of
/// the suite with the NativeAOT sidecar leaves them out (<c>Subject=ControlPlaneStore</c>).
/// </summary>
[Trait("Subject", "ControlPlaneStore")]
public sealed class EtcdStoreTests(ITestOutputHelper output) : MeshTest
{
    private static readonly TimeSpan SvidTtl = TimeSpan.FromSeconds(10);
    private readonly TempDirectory _files = new();
    private EtcdServer _etcd = null!;
    private string _keyFile = null!;

    private const string OrdersAllowsFrontend = """
        apiVersion: meshguard.io/v1alpha1
        kind: AccessPolicy
        metadata: { name: orders-callers, namespace: shop }
        spec:
          selector: { serviceAccount: orders }
          action: allow
          rules:
            - name: frontend-orders
              from:
                - identity: spiffe://mesh.local/ns/shop/sa/frontend
              to:
                - methods: [GET]
                  paths: ["/orders/*"]
        """;

    protected override async Task StartAsync()
    {
        _etcd = await EtcdServer.StartAsync(LocalMesh.FreePorts(2));
        _keyFile = _files.Combine("store.key");
        SecureFile.WriteAtomically(_keyFile, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)), secret: true);
    }

    private string[] StoreArguments => ["--store", _etcd.Store, "--store-key-file", _keyFile];

    /// <summary>Replicas A and B, started at the same moment on the same empty etcd: each its own data directory and ports.</summary>
    private async Task<(ControlPlaneEndpoints A, ControlPlaneEndpoints B)> StartReplicasAsync(string[]? more = null)
    {
        string[] arguments = [.. StoreArguments, .. more ?? []];
        var a = Mesh.StartControlPlaneAsync(svidTtl: SvidTtl, extraArguments: arguments);
        var b = Mesh.StartControlPlaneAsync(svidTtl: SvidTtl, extraArguments: arguments, replica: ("control-plane-b", new DataDirectory(_files.Combine("cp-b"))));
        await Task.WhenAll(a, b);
        return (await a, await b);
    }

    /// <summary>Orders and frontend with their sidecars; orders' streams from B and frontend's from A, or each from both.</summary>
    private sealed record TwoReplicaMesh(ControlPlaneEndpoints A, ControlPlaneEndpoints B, RecordingApp OrdersApp, MeshService Orders, MeshService Frontend);

    /// <param name="policy">Put into etcd before the sidecars start, if given.</param>
    private async Task<TwoReplicaMesh> StartMeshAsync(string? policy, bool eachFromBoth = false, string[]? more = null)
    {
        var (a, b) = await StartReplicasAsync(more);
        if (policy is not null)
        {
            await ApplyAsync(policy);
        }
        var ordersApp = await StartAppAsync("orders");
        var orders = await Mesh.StartSidecarAsync("orders", ordersApp.Port, controlPlanes: eachFromBoth ? [a, b] : [b], joinToken: await TokenAsync("orders"));
        var frontend = await Mesh.StartSidecarAsync("frontend", (await StartAppAsync("frontend")).Port, controlPlanes: eachFromBoth ? [a, b] : [a], joinToken: await TokenAsync("frontend"));
        // Each replica's table holds both: the registrations are in etcd.
        await SidecarAdmin.WaitForServicesAsync(frontend, 2);
        await SidecarAdmin.WaitForServicesAsync(orders, 2);
        return new TwoReplicaMesh(a, b, ordersApp, orders, frontend);
    }

    /// <summary>Replica A's process (the two start at once, so not by position).</summary>
    private MeshProcess ReplicaA => Mesh.Processes.Single(static p => p.Name == "control-plane");

    private EtcdConnection Etcd() => new(StoreLocation.Parse(_etcd.Store, out _)!);

    private async Task<string> TokenAsync(string service) =>
        await new EtcdJoinTokens(Etcd(), TimeProvider.System).CreateAsync(LocalMesh.IdentityOf(service), TimeSpan.FromMinutes(5), CancellationToken.None);

    private static long ConfigVersion(MeshService sidecar) => SidecarAdmin.Config(sidecar).GetProperty("version").GetInt64();


    [Fact]
    public async Task ReplicasStartedTogetherShareOneCaWhosePrivateKeysEtcdHoldsOnlySealed()
    {
        var (a, b) = await StartReplicasAsync();
        Assert.Equal(await File.ReadAllTextAsync(a.BundleFile), await File.ReadAllTextAsync(b.BundleFile));

        using var etcd = Etcd();
        var stored = (await etcd.GetAsync(EtcdKeys.Ca, CancellationToken.None))!.Value.Value;
        Assert.Contains("BEGIN CERTIFICATE", stored, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", stored, StringComparison.Ordinal);
        var document = (await CaDocument.ReadAsync(etcd, CancellationToken.None))!;
        Assert.StartsWith("mgsealed1:", document.SealedRootKey, StringComparison.Ordinal);
        Assert.StartsWith("mgsealed1:", document.SealedIntermediateKey, StringComparison.Ordinal);
        // Neither replica wrote the CA to its own disk.
        Assert.False(Directory.Exists(Mesh.Data.CaDirectory));
        Assert.False(Directory.Exists(new DataDirectory(_files.Combine("cp-b")).CaDirectory));

        // Exactly one of them leads (the once-only work), as their /metrics say.
        Assert.True(await Eventually.TrueAsync(async () => await MetricAsync(a, "meshguard_cp_leader") + await MetricAsync(b, "meshguard_cp_leader") == 1),
            "not exactly one leader of two replicas");

        // meshctl reads the same bundle from etcd.
        var (code, bundle) = await Cli.RunAsync("meshctl", "bundle", "show", "--store", _etcd.Store);
        Assert.Equal(0, code);
        Assert.Equal(TrustBundle.Load(a.BundleFile).ToPem(), bundle);

        // A third replica with another store key cannot open the CA and does not start.
        var wrongKey = _files.Combine("wrong.key");
        SecureFile.WriteAtomically(wrongKey, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)), secret: true);
        var ports = LocalMesh.FreePorts(4);
        var third = Mesh.Track(MeshProcess.Start("control-plane-c", "meshguard-cp",
            ["--data", _files.Combine("cp-c"), "--store", _etcd.Store, "--store-key-file", wrongKey, "--bootstrap-port", $"{ports[0]}",
             "--grpc-port", $"{ports[1]}", "--admin-port", $"{ports[2]}", "--webhook-port", $"{ports[3]}"], _files.Combine("cp-c.log")));
        Assert.True(await Eventually.TrueAsync(() => third.HasExited, TimeSpan.FromSeconds(30)), "a replica with the wrong store key kept running");
        Assert.Equal(1, third.ExitCode);
        Assert.Contains("does not open with this store key", third.ReadLog(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task InitMovesAnExistingCaIntoEtcdAndReplicasSignWithIt()
    {
        var existing = _files.Combine("existing-ca");
        var (made, madeOutput) = await Cli.RunAsync("meshguard-cp", "init", "--data", existing);
        Assert.True(made == 0, madeOutput);
        var (moved, movedOutput) = await Cli.RunAsync("meshguard-cp", "init", "--data", existing, "--store", _etcd.Store, "--store-key-file", _keyFile);
        Assert.True(moved == 0, movedOutput);
        Assert.Contains("its keys sealed", movedOutput, StringComparison.Ordinal);

        var replica = await Mesh.StartControlPlaneAsync(extraArguments: StoreArguments);
        Assert.Equal(await File.ReadAllTextAsync(new DataDirectory(existing).TrustBundle), await File.ReadAllTextAsync(replica.BundleFile));

        // Every replica enforces the mesh default the first recorded.
        var (mismatch, mismatchOutput) = await Cli.RunAsync("meshguard-cp", ["--data", _files.Combine("cp-allow"), "--default-policy", "allow", .. StoreArguments]);
        Assert.Equal(2, mismatch);
        Assert.Contains("enforce --default-policy deny", mismatchOutput, StringComparison.Ordinal);

        // Another CA is not put over the one the replicas use.
        var (other, otherOutput) = await Cli.RunAsync("meshguard-cp", "init", "--data", _files.Combine("other-ca"), "--store", _etcd.Store, "--store-key-file", _keyFile);
        Assert.Equal(1, other);
        Assert.Contains("holds another CA", otherOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AJoinTokenRacedToBothReplicasIsAcceptedExactlyOnce()
    {
        var (a, b) = await StartReplicasAsync();
        var bundle = TrustBundle.Load(a.BundleFile);
        var inventory = LocalMesh.IdentityOf("inventory");
        using var clientA = BootstrapClient.For(a.BootstrapPort, bundle);
        using var clientB = BootstrapClient.For(b.BootstrapPort, bundle);
        for (var round = 0; round < 20; round++)
        {
            // Made with meshctl, as an operator would.
            var (code, tokenOutput) = await Cli.RunAsync("meshctl", "token", "create", "--store", _etcd.Store, "--spiffe-id", inventory.ToString());
            Assert.True(code == 0, tokenOutput);
            var token = tokenOutput.Trim();
            var attempts = new[] { clientA, clientB, clientA, clientB }.Select(async client =>
            {
                using var key = SvidKey.CreateKey();
                using var response = await client.PostAsJsonAsync(Bootstrap.AttestPath,
                    new AttestRequest(token, SvidKey.CreateSigningRequestPem(key, inventory), "inventory", "127.0.0.1:9"), ContractsJsonContext.Default.AttestRequest);
                return (response.StatusCode, Body: await response.Content.ReadAsStringAsync());
            }).ToList();
            var results = await Task.WhenAll(attempts);
            Assert.Single(results, r => r.StatusCode == HttpStatusCode.OK);
            Assert.All(results.Where(r => r.StatusCode != HttpStatusCode.OK), r =>
            {
                Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
                Assert.Contains("join token was already used", r.Body, StringComparison.Ordinal);
            });
        }
    }

    [Fact]
    public async Task APolicyPushedWithMeshctlReachesSidecarsOfBothReplicasWithinOneSecond()
    {
        var (a, _, _, orders, frontend) = await StartMeshAsync(policy: null);
        using var client = SidecarAdmin.ThroughOutbound(frontend);
        using (var denied = await client.GetAsync(new Uri("http://orders/orders/1")))
        {
            Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        }

        // A bad file is refused whole with file:line and nothing reaches etcd.
        var bad = _files.Combine("orders.yaml");
        await File.WriteAllTextAsync(bad, OrdersAllowsFrontend.Replace("action: allow", "action: permit", StringComparison.Ordinal));
        var (badCode, badOutput) = await Cli.RunAsync("meshctl", "policy", "apply", "-f", bad, "--store", _etcd.Store);
        Assert.Equal(1, badCode);
        Assert.Matches(@"orders\.yaml:\d+:\d+: ", badOutput);
        Assert.Contains("nothing written", badOutput, StringComparison.Ordinal);
        using (var etcd = Etcd())
        {
            Assert.Null(await etcd.GetAsync(EtcdKeys.Policy("orders.yaml"), CancellationToken.None));
        }

        var good = _files.Combine("good", "orders.yaml");
        Directory.CreateDirectory(Path.GetDirectoryName(good)!);
        await File.WriteAllTextAsync(good, OrdersAllowsFrontend);
        var (code, applied) = await Cli.RunAsync("meshctl", "policy", "apply", "-f", good, "--store", _etcd.Store);
        var returned = DateTimeOffset.UtcNow;
        Assert.True(code == 0, applied);
        var revision = long.Parse(System.Text.RegularExpressions.Regex.Match(applied, @"at revision (\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        // The version sidecars hold is the store's base plus the etcd revision of the change, whichever replica they stream from.
        long version;
        using (var etcd = Etcd())
        {
            version = long.Parse((await etcd.GetAsync(EtcdKeys.VersionBase, CancellationToken.None))!.Value.Value, System.Globalization.CultureInfo.InvariantCulture) + revision;
        }
        // At least that version: another write to the store (a sidecar's registration) may move it on meanwhile.
        Assert.True(await Eventually.TrueAsync(() => ConfigVersion(orders) >= version && ConfigVersion(frontend) >= version, TimeSpan.FromSeconds(5)),
            $"sidecars hold versions {ConfigVersion(orders)} and {ConfigVersion(frontend)}, not at least {version} (revision {revision})");
        // When each sidecar applied it, by its own clock: how quickly the test gets round to asking does not count.
        var reached = new[] { orders, frontend }.Max(s => SidecarAdmin.Config(s).GetProperty("applied_at").GetDateTimeOffset()) - returned;
        output.WriteLine($"policy applied at both sidecars {reached.TotalMilliseconds:F0} ms after meshctl policy apply returned");
        Assert.True(reached < TimeSpan.FromSeconds(1), $"the policy took {reached.TotalMilliseconds:F0} ms to reach both sidecars\n"
            + $"replica A:\n{ReplicaA.ReadLog()}\nreplica B:\n{Mesh.Processes.Single(static p => p.Name == "control-plane-b").ReadLog()}\n"
            + $"orders:\n{orders.Sidecar!.ReadLog()}\nfrontend:\n{frontend.Sidecar!.ReadLog()}");
        using (var allowed = await client.GetAsync(new Uri("http://orders/orders/2")))
        {
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        }

        // meshctl answers from the store what the replicas enforce.
        var (statusCode, status) = await Cli.RunAsync("meshctl", "policy", "status", "--store", _etcd.Store);
        Assert.True(statusCode == 0, status);
        var reported = System.Text.RegularExpressions.Regex.Match(status, @"policy version (\d+), mesh default deny");
        Assert.True(reported.Success && long.Parse(reported.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= version, status);
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(status, @"ok\s+/meshguard/policies/orders\.yaml: shop/orders-callers"), status);
        var (authzCode, authz) = await Cli.RunAsync("meshctl", "authz", "check", "--store", _etcd.Store,
            "--from", LocalMesh.IdentityOf("frontend").ToString(), "--to", LocalMesh.IdentityOf("orders").ToString(), "--path", "/orders/7");
        Assert.True(authzCode == 0, authz);
        Assert.Contains("policy shop/orders-callers rule frontend-orders", authz, StringComparison.Ordinal);

        // The flow-log checkpoints orders' sidecar gives replica B are witnessed in etcd, and the log verifies against them.
        using (var etcd = Etcd())
        {
            Assert.True(await Eventually.TrueAsync(async () => await etcd.GetAsync(EtcdKeys.Witness + DataDirectory.WitnessName(orders.Identity.ToString()), CancellationToken.None) is not null, TimeSpan.FromSeconds(20)),
                "no witnessed checkpoint of orders in etcd");
        }
        var (verifyCode, verified) = await Cli.RunAsync("meshctl", "flows", "verify", orders.FlowDirectory!, "--bundle", a.BundleFile, "--store", _etcd.Store);
        Assert.True(verifyCode == 0, verified);
        Assert.Contains("witnessed seq", verified, StringComparison.Ordinal);

        // Deleting the document brings the default deny back.
        var (deleteCode, deleted) = await Cli.RunAsync("meshctl", "policy", "delete", "orders.yaml", "--store", _etcd.Store);
        Assert.True(deleteCode == 0, deleted);
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            using var response = await client.GetAsync(new Uri("http://orders/orders/3"));
            return response.StatusCode == HttpStatusCode.Forbidden;
        }), "the deleted policy still allows frontend");
    }

    [Fact]
    public async Task LosingTheReplicaASidecarStreamsFromFailsNoRequestAndItResumesAtItsVersionOnTheOther()
    {
        var (_, b, _, orders, frontend) = await StartMeshAsync(OrdersAllowsFrontend, eachFromBoth: true);
        using var client = SidecarAdmin.ThroughOutbound(frontend);
        await using var load = SteadyLoad.Start(client, n => new HttpRequestMessage(HttpMethod.Get, $"http://orders/orders/{n}"), workers: 2);
        await load.RunForAsync(100);
        var versionBefore = ConfigVersion(frontend);
        ReplicaA.Kill();

        await ReplicaFailover.StreamsMovedAsync(b, orders, frontend);
        // Same revision, same version: B had nothing newer to send.
        Assert.Equal(versionBefore, ConfigVersion(frontend));
        await ReplicaFailover.RenewalsMovedAsync(b, SvidTtl, orders, frontend);
        await load.RunForAsync(100);
        await load.StopAsync();
        Assert.Empty(load.Failures);
    }

    [Fact]
    public async Task ReplicasOnOneFlowStoreKeepEachSidecarsWholeLogInOneChainThoughTheReplicaItUploadedToWasKilled()
    {
        await using var flowStore = await PostgresServer.StartAsync(LocalMesh.FreePorts(1)[0]);
        var (a, b, _, orders, frontend) = await StartMeshAsync(OrdersAllowsFrontend, eachFromBoth: true, more: ["--flow-store", flowStore.Url]);
        using var client = SidecarAdmin.ThroughOutbound(frontend);
        await using var load = SteadyLoad.Start(client, n => new HttpRequestMessage(HttpMethod.Get, $"http://orders/orders/{n}"), workers: 2);
        // Until A has put lines into the store (a sidecar uploads at most once a second), then a little more.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (await MetricAsync(a, "meshguard_cp_flow_lines_collected_total") == 0 && DateTime.UtcNow < deadline)
        {
            await load.RunForAsync(100);
        }
        Assert.True(await MetricAsync(a, "meshguard_cp_flow_lines_collected_total") > 0, "no sidecar uploaded to replica A");
        await load.RunForAsync(300);
        // Killed while segments are on their way: the sidecars carry on at B from where the store's chain ends.
        ReplicaA.Kill();
        await ReplicaFailover.StreamsMovedAsync(b, orders, frontend);
        await load.RunForAsync(300);
        await load.StopAsync();
        Assert.Empty(load.Failures);
        // A stopping sidecar uploads what is left, ending with its final checkpoint.
        Assert.True(await orders.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));
        Assert.True(await frontend.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));

        await using var connection = new Npgsql.NpgsqlConnection(flowStore.ConnectionString);
        await connection.OpenAsync();
        foreach (var sidecar in new[] { orders, frontend })
        {
            await using var query = new Npgsql.NpgsqlCommand("SELECT chain, seq, line FROM meshguard_flow_lines WHERE workload = $1 ORDER BY chain, seq", connection);
            query.Parameters.Add(new Npgsql.NpgsqlParameter { Value = sidecar.Identity.ToString() });
            var stored = new MemoryStream();
            var chains = new HashSet<int>();
            long expectedSeq = 1;
            await using (var reader = await query.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    chains.Add(reader.GetInt32(0));
                    Assert.Equal(expectedSeq++, reader.GetInt64(1));
                    stored.Write((byte[])reader[2]);
                    stored.WriteByte((byte)'\n');
                }
            }
            Assert.Equal([0], chains);
            // Line for line the sidecar's own log: nothing lost at the kill, nothing taken twice.
            Assert.Equal(TestFlowLog.Bytes(sidecar.FlowDirectory!), stored.ToArray());
        }
        output.WriteLine($"flow store: {load.Sent} calls, both sidecars' logs whole in one chain each after replica A was killed");
    }

    [Fact]
    public async Task EitherReplicasConsoleShowsTheWholeMeshFromTheFlowStoreAndTheAuditReportsALineChangedInTheDatabase()
    {
        await using var flowStore = await PostgresServer.StartAsync(LocalMesh.FreePorts(1)[0]);
        // Orders streams from B alone and frontend from A alone: each replica took only one of the two logs.
        var (a, b, _, orders, frontend) = await StartMeshAsync(OrdersAllowsFrontend, more: ["--flow-store", flowStore.Url, "--flow-audit-interval", "2s"]);
        using var client = SidecarAdmin.ThroughOutbound(frontend);
        for (var i = 0; i < 6; i++)
        {
            using var allowed = await client.GetAsync(new Uri($"http://orders/orders/{i}"));
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
            using var denied = await client.PostAsync(new Uri($"http://orders/orders/{i}"), null);
            Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        }
        Assert.True(await orders.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));
        Assert.True(await frontend.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));

        var consoles = new[] { await ConsoleAsync(a), await ConsoleAsync(b) };
        var seen = new List<string[]>();
        foreach (var console in consoles)
        {
            var lines = (await console.GetStringAsync(new Uri($"http://127.0.0.1:{console.BaseAddress!.Port}/console/flows?format=jsonl&direction=any&window=1h")))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries);
            seen.Add([.. lines.Order(StringComparer.Ordinal)]);
        }
        // 12 calls, each recorded by frontend's sidecar (outbound) and orders' (inbound): on either replica, both logs.
        Assert.Equal(24, seen[0].Length);
        Assert.Equal(seen[0], seen[1]);
        Assert.Contains(seen[0], l => l.Contains("\"direction\":\"outbound\"", StringComparison.Ordinal));
        Assert.Contains(seen[0], l => l.Contains("\"direction\":\"inbound\"", StringComparison.Ordinal) && l.Contains("\"decision\":\"deny\"", StringComparison.Ordinal));
        // An edge's page: its count and deciding rule come from the store's edge counts.
        var edge = await consoles[0].GetStringAsync(new Uri(
            $"http://127.0.0.1:{a.AdminPort}/console/flows?src={Uri.EscapeDataString(frontend.Identity.ToString())}&dst={Uri.EscapeDataString(orders.Identity.ToString())}&decision=allow&direction=inbound&window=1h"));
        Assert.Contains("6 record(s) in the last 1h", edge, StringComparison.Ordinal);
        Assert.Contains("frontend-orders</td><td>6</td>", edge, StringComparison.Ordinal);

        // A denied call made to look allowed, in the database itself: the audit finds it, and both consoles say so.
        await using (var connection = new Npgsql.NpgsqlConnection(flowStore.ConnectionString))
        {
            await connection.OpenAsync();
            await using var edit = new Npgsql.NpgsqlCommand(
                "UPDATE meshguard_flow_lines SET line = convert_to(replace(convert_from(line, 'UTF8'), '\"decision\":\"deny\"', '\"decision\":\"allow\"'), 'UTF8') " +
                "WHERE workload = $1 AND seq = (SELECT min(seq) FROM meshguard_flow_lines WHERE workload = $1 AND decision = 'deny')", connection);
            edit.Parameters.Add(new Npgsql.NpgsqlParameter { Value = orders.Identity.ToString() });
            Assert.Equal(1, await edit.ExecuteNonQueryAsync());
        }
        foreach (var console in consoles)
        {
            var page = "";
            Assert.True(await Eventually.TrueAsync(async () =>
            {
                page = await console.GetStringAsync(new Uri($"http://127.0.0.1:{console.BaseAddress!.Port}/console/"));
                return page.Contains("1 of 2 collected flow logs do not verify", StringComparison.Ordinal);
            }, TimeSpan.FromSeconds(30)), "the console did not report the changed line:\n" + page);
            var workloads = await console.GetStringAsync(new Uri($"http://127.0.0.1:{console.BaseAddress!.Port}/console/workloads"));
            Assert.Contains("modified", workloads, StringComparison.Ordinal);
        }
        Assert.True(await Eventually.TrueAsync(async () => await MetricAsync(a, "meshguard_cp_flow_chains_broken") + await MetricAsync(b, "meshguard_cp_flow_chains_broken") >= 1, TimeSpan.FromSeconds(10)));
        output.WriteLine("both consoles: the same 24 records of both workloads; the audit reported orders' changed line");
    }

    /// <summary>A logged-in console of <paramref name="replica"/>: its one-time URL from meshctl, then the session cookie.</summary>
    private static async Task<HttpClient> ConsoleAsync(ControlPlaneEndpoints replica)
    {
        var (code, url) = await Cli.RunAsync("meshctl", "console", "url", "--data", replica.DataDirectory);
        Assert.True(code == 0, url);
        var console = new HttpClient(new SocketsHttpHandler { UseProxy = false, CookieContainer = new CookieContainer(), AllowAutoRedirect = false })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{replica.AdminPort}/"),
        };
        using var login = await console.GetAsync(new Uri(url.Trim()));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        return console;
    }

    [Fact]
    public async Task WhileEtcdIsDownSidecarsKeepEnforcingAndTheReplicasPickUpChangesWhenItIsBack()
    {
        var (a, b, _, orders, frontend) = await StartMeshAsync(OrdersAllowsFrontend);
        using var client = SidecarAdmin.ThroughOutbound(frontend);

        Assert.Equal(1, await MetricAsync(a, "meshguard_cp_store_connected"));
        await _etcd.KillAsync();
        Assert.True(await Eventually.TrueAsync(async () => await MetricAsync(a, "meshguard_cp_store_connected") == 0 && await MetricAsync(b, "meshguard_cp_store_connected") == 0, TimeSpan.FromSeconds(30)),
            "the replicas did not notice etcd was gone:\n" + ReplicaA.ReadLog());
        for (var i = 0; i < 20; i++)
        {
            using var allowed = await client.GetAsync(new Uri($"http://orders/orders/{i}"));
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
            using var denied = await client.PostAsync(new Uri($"http://orders/orders/{i}"), null);
            Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        }

        await _etcd.StartAgainAsync();
        Assert.True(await Eventually.TrueAsync(async () => await MetricAsync(a, "meshguard_cp_store_connected") == 1 && await MetricAsync(b, "meshguard_cp_store_connected") == 1, TimeSpan.FromSeconds(30)),
            "the replicas did not reconnect to etcd:\n" + ReplicaA.ReadLog());
        // The change made after the outage reaches both replicas' sidecars: the watches were resumed.
        await ApplyAsync(OrdersAllowsFrontend.Replace("methods: [GET]", "methods: [GET, POST]", StringComparison.Ordinal));
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            using var response = await client.PostAsync(new Uri("http://orders/orders/9"), null);
            return response.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(20)), "a policy change after etcd came back did not reach the mesh:\n" + ReplicaA.ReadLog());
        // Both sidecars come to the same version; one may be a revision ahead for a moment when they are compared.
        Assert.True(await Eventually.TrueAsync(() => ConfigVersion(frontend) == ConfigVersion(orders), TimeSpan.FromSeconds(10)),
            $"the sidecars stayed on different versions: frontend {ConfigVersion(frontend)}, orders {ConfigVersion(orders)}");
    }

    [Fact]
    public async Task AnIdentityRevokedThroughTheStoreIsRefusedByASidecarOfTheOtherReplicaAndCannotRenew()
    {
        var (_, _, ordersApp, _, frontend) = await StartMeshAsync(OrdersAllowsFrontend);
        using var client = SidecarAdmin.ThroughOutbound(frontend);
        using (var before = await client.GetAsync(new Uri("http://orders/orders/1")))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        var (code, revoked) = await Cli.RunAsync("meshctl", "identity", "revoke", "--store", _etcd.Store, "--spiffe-id", LocalMesh.IdentityOf("frontend").ToString());
        Assert.True(code == 0, revoked);
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            using var response = await client.GetAsync(new Uri("http://orders/orders/2"));
            return response.StatusCode != HttpStatusCode.OK;
        }), "orders, whose sidecar streams from replica B, still lets the revoked frontend in");
        var (listCode, list) = await Cli.RunAsync("meshctl", "identity", "revoked", "--store", _etcd.Store);
        Assert.Equal(0, listCode);
        Assert.Contains(LocalMesh.IdentityOf("frontend").ToString(), list, StringComparison.Ordinal);
        // Replica A, where frontend renews, refuses it too.
        Assert.True(await Eventually.TrueAsync(() => frontend.Sidecar!.ReadLog().Contains("is revoked", StringComparison.Ordinal), SvidTtl + TimeSpan.FromSeconds(5)),
            "frontend renewed although revoked:\n" + frontend.Sidecar!.ReadLog());
        using (var after = await client.GetAsync(new Uri("http://orders/orders/after")))
        {
            Assert.NotEqual(HttpStatusCode.OK, after.StatusCode);
        }
        Assert.DoesNotContain(ordersApp.Requests, r => r.Path == "/orders/after");
    }

    private static async Task<long> MetricAsync(ControlPlaneEndpoints replica, string name)
    {
        using var http = new HttpClient();
        var metrics = await http.GetStringAsync(new Uri($"http://127.0.0.1:{replica.AdminPort}/metrics"));
        return SidecarAdmin.MetricValue(metrics, name) ?? throw new InvalidOperationException($"{name} is not in the metrics:\n{metrics}");
    }

    private async Task ApplyAsync(string policy)
    {
        var file = _files.Combine($"apply-{Guid.NewGuid():N}", "orders.yaml");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        await File.WriteAllTextAsync(file, policy);
        var (code, applied) = await Cli.RunAsync("meshctl", "policy", "apply", "-f", file, "--store", _etcd.Store);
        Assert.True(code == 0, applied);
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _etcd.DisposeAsync();
        _files.Dispose();
    }
}
