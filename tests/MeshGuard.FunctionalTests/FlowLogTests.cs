using System.Net;
using MeshGuard.Ctl.Demo;
using MeshGuard.FlowLog;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>Both sidecars of a call write a record of it, and the logs prove they were not touched.</summary>
public sealed class FlowLogTests : IAsyncLifetime
{
    private const int Calls = 200;
    private readonly TempDirectory _temp = new();
    private LocalMesh _mesh = null!;
    private RecordingApp _app = null!;
    private MeshService _orders = null!;
    private MeshService _frontend = null!;

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        _mesh = new LocalMesh(_temp.Path);
        await _mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
        _app = await RecordingApp.StartAsync("orders");
        _orders = await _mesh.StartSidecarAsync("orders", _app.Port);
        _frontend = await _mesh.StartSidecarAsync("frontend", _app.Port);
        await SidecarAdmin.WaitForServicesAsync(_frontend, 2);
    }

    public async Task DisposeAsync()
    {
        await _mesh.DisposeAsync();
        await _app.DisposeAsync();
        _temp.Dispose();
    }

    private async Task CallAsync(int count, string prefix)
    {
        using var client = SidecarAdmin.ThroughOutbound(_frontend);
        for (var i = 0; i < count; i++)
        {
            using var response = await client.GetAsync(new Uri($"http://orders/{prefix}/{i}?secret=1"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    private static List<System.Text.Json.JsonElement> Flows(MeshService sidecar, string direction) =>
        FlowLogReader.Records(sidecar.FlowDirectory!).Where(r => r.Text("kind") == "flow" && r.Text("direction") == direction).ToList();

    /// <summary>The sequence number of a stopped sidecar's last record.</summary>
    private static int LastSeq(MeshService sidecar) => FlowLogReader.Records(sidecar.FlowDirectory!).Last().GetProperty("seq").GetInt32();

    [Fact]
    public async Task EachSideOfNCallsHoldsExactlyNRecordsJoinedByRequestIdAndTheLogsVerify()
    {
        await CallAsync(Calls, "orders");
        // SIGTERM: each sidecar drains its queue and signs a final checkpoint.
        Assert.True(await _frontend.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));
        Assert.True(await _orders.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));

        var outbound = Flows(_frontend, "outbound");
        var inbound = Flows(_orders, "inbound");
        Assert.Equal(Calls, outbound.Count);
        Assert.Equal(Calls, inbound.Count);
        Assert.Equal(outbound.Select(r => r.Text("request_id")).Order(), inbound.Select(r => r.Text("request_id")).Order());
        var first = inbound[0];
        Assert.Equal("spiffe://mesh.local/ns/shop/sa/frontend", first.Text("source_id"));
        Assert.Equal("spiffe://mesh.local/ns/shop/sa/orders", first.Text("dest_id"));
        Assert.Equal("/orders/0", first.Text("path")); // no query by default
        Assert.Equal("allow", first.Text("decision"));
        Assert.Equal("mesh-default", first.Text("policy"));
        Assert.Equal("TLSv1.3", first.Text("tls_version"));
        Assert.Equal("HTTP/2", first.Text("protocol"));

        foreach (var sidecar in new[] { _frontend, _orders })
        {
            var (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", sidecar.FlowDirectory!, "--bundle", _mesh.Data.TrustBundle);
            Assert.True(exit == 0, output);
            Assert.StartsWith("OK: 1 files", output, StringComparison.Ordinal);
            Assert.Contains($"workload {sidecar.Identity}; signatures cover seq 1 to ", output, StringComparison.Ordinal);
            Assert.DoesNotContain("covered by no signature", output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task TheChainContinuesAcrossASidecarRestartAndTamperingIsCaught()
    {
        await CallAsync(5, "before");
        _orders = await _mesh.RestartSidecarAsync(_orders);
        await CallAsync(5, "after");
        await _orders.Sidecar!.StopAsync(TimeSpan.FromSeconds(10));

        var (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", _orders.FlowDirectory!, "--bundle", _mesh.Data.TrustBundle);
        Assert.True(exit == 0, output);
        Assert.StartsWith("OK: 2 files, 10 flow records", output, StringComparison.Ordinal);

        // The edited record's line: start, /before/0..2, /before/3 -- unless a periodic checkpoint fell between.
        var file = FlowLogFormat.Files(_orders.FlowDirectory!)[0];
        var lines = File.ReadAllLines(file);
        var edited = Array.FindIndex(lines, l => l.Contains("\"/before/3\"", StringComparison.Ordinal)) + 1;
        Assert.True(edited >= 5, string.Join('\n', lines));
        lines[edited - 1] = lines[edited - 1].Replace("\"/before/3\"", "\"/before/9\"", StringComparison.Ordinal);
        File.WriteAllText(file, string.Join('\n', lines) + "\n");
        (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", _orders.FlowDirectory!, "--bundle", _mesh.Data.TrustBundle);
        Assert.Equal(1, exit);
        Assert.Contains($"flows-000001.jsonl:{edited}: seq {edited}: modified", output, StringComparison.Ordinal);

        var (queryExit, query) = await Cli.RunAsync("meshctl", "flows", "query", _orders.FlowDirectory!, "--from", "spiffe://mesh.local/ns/shop/sa/frontend", "--json");
        Assert.Equal(0, queryExit);
        Assert.Equal(10, query.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public async Task TheControlPlaneHoldsACopyOfEachSidecarsLogUploadedAcrossARestartThatVerifiesAndMatchesByteForByte()
    {
        await CallAsync(30, "before");
        _orders = await _mesh.RestartSidecarAsync(_orders);
        await CallAsync(10, "after");
        Assert.True(await _orders.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));
        Assert.True(await _frontend.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));

        foreach (var sidecar in new[] { _orders, _frontend })
        {
            var copy = _mesh.Data.CollectedFlowLog(sidecar.Identity.ToString());
            // The final checkpoint goes up as the sidecar stops; the copy is then the log, line for line.
            Assert.True(await Eventually.TrueAsync(() => TestFlowLog.Bytes(copy).AsSpan().SequenceEqual(TestFlowLog.Bytes(sidecar.FlowDirectory!))),
                $"the copy of {sidecar.Identity} holds {TestFlowLog.Bytes(copy).Length} bytes, the log {TestFlowLog.Bytes(sidecar.FlowDirectory!).Length}");
            Assert.Equal(sidecar.Identity + "\n", File.ReadAllText(Path.Combine(copy, "workload")));
            var (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", copy, "--bundle", _mesh.Data.TrustBundle, "--data", _mesh.Data.Root);
            Assert.True(exit == 0, output);
            Assert.Contains($"workload {sidecar.Identity}", output, StringComparison.Ordinal);
        }
        Assert.Equal(40, FlowLogReader.Records(_mesh.Data.CollectedFlowLog(_orders.Identity.ToString())).Count(r => r.Text("kind") == "flow"));
    }

    [Fact]
    public async Task ASegmentLargerThanOneUploadPartReachesTheControlPlaneWholeInPartsAndTheCopyMatchesTheLog()
    {
        // Paths of 2,000 characters: each record is some 2.1 KB, and 150 calls put well over one 64 KiB part between
        // two signed records.
        await CallAsync(150, new string('p', 2000));
        Assert.True(await _orders.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));
        Assert.True(await _frontend.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));

        foreach (var sidecar in new[] { _orders, _frontend })
        {
            var log = TestFlowLog.Bytes(sidecar.FlowDirectory!);
            Assert.True(LongestUnsignedRun(log) > 2 * 64 * 1024, $"{sidecar.Identity}: no segment spans several parts");
            var copy = _mesh.Data.CollectedFlowLog(sidecar.Identity.ToString());
            Assert.True(await Eventually.TrueAsync(() => TestFlowLog.Bytes(copy).AsSpan().SequenceEqual(log)),
                $"the copy of {sidecar.Identity} holds {TestFlowLog.Bytes(copy).Length} bytes, the log {log.Length}");
            var (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", copy, "--bundle", _mesh.Data.TrustBundle, "--data", _mesh.Data.Root);
            Assert.True(exit == 0, output);
        }
        // The parts came through Kestrel in the control plane's own 16 KiB blocks, not Kestrel's 4 KiB ones.
        using var http = new HttpClient();
        var metrics = await http.GetStringAsync(new Uri($"http://127.0.0.1:{_mesh.ControlPlane!.AdminPort}/metrics"));
        Assert.True(SidecarAdmin.MetricValue(metrics, "meshguard_cp_buffer_blocks_created_total") > 0, metrics);
    }

    /// <summary>The most bytes between the ends of two signed records: a segment that ends at the later one is at least that long.</summary>
    private static int LongestUnsignedRun(byte[] log)
    {
        int longest = 0, lastSigned = 0, end = 0;
        foreach (var (_, line, _) in FlowLogFormat.Lines(log))
        {
            end += line.Length + 1;
            if (FlowLineHead.TryRead(line.Span, out var head) && head.IsSignedRecord)
            {
                longest = Math.Max(longest, end - lastSigned);
                lastSigned = end;
            }
        }
        return longest;
    }

    [Fact]
    public async Task VerifySaysWhatTheSignaturesCoverAndALogMadeUpOrExtendedWithoutAKeyIsNotProven()
    {
        await CallAsync(5, "signed");
        Assert.True(await _orders.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));
        var file = FlowLogFormat.Files(_orders.FlowDirectory!)[^1];
        // Start, 5 flows, the final checkpoint, and one timed checkpoint more when the calls took over 5 s.
        var last = LastSeq(_orders);
        Assert.InRange(last, 7, 8);
        var (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", _orders.FlowDirectory!, "--bundle", _mesh.Data.TrustBundle, "--require-signed-tail");
        Assert.True(exit == 0, output);
        Assert.Contains($"signatures cover seq 1 to {last}", output, StringComparison.Ordinal);

        // An invented record, chained on correctly after the last checkpoint: no signature covers it.
        File.AppendAllText(file, TestFlowLog.Forged(last + 1, TestFlowLog.HashOfLastLine(file), TestFlowLog.ForgedCall));
        (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", _orders.FlowDirectory!, "--bundle", _mesh.Data.TrustBundle);
        Assert.True(exit == 0, output);
        Assert.Contains($"1 record(s) after seq {last} are covered by no signature yet", output, StringComparison.Ordinal);
        (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", _orders.FlowDirectory!, "--bundle", _mesh.Data.TrustBundle, "--require-signed-tail");
        Assert.Equal(3, exit);
        Assert.Contains("not proven: 1 record(s) follow the last signed record", output, StringComparison.Ordinal);

        // A log made up from nothing: it chains, and nothing proves it.
        using var forged = new TempDirectory();
        File.WriteAllText(Path.Combine(forged.Path, FlowLogFormat.FileName(1)), TestFlowLog.Forged(1, FlowLogFormat.GenesisHash, TestFlowLog.ForgedCall, TestFlowLog.ForgedCall));
        (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", forged.Path, "--bundle", _mesh.Data.TrustBundle);
        Assert.Equal(3, exit);
        Assert.Contains("not proven: the log holds no valid signed record", output, StringComparison.Ordinal);
        Assert.Contains("NOT PROVEN:", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ALogCutShortAfterItsLastCheckpointIsCaughtOnlyAgainstTheWitness()
    {
        await CallAsync(20, "witnessed");
        Assert.True(await _orders.Sidecar!.StopAsync(TimeSpan.FromSeconds(10)));
        var args = new[] { "flows", "verify", _orders.FlowDirectory!, "--bundle", _mesh.Data.TrustBundle, "--data", _mesh.Data.Root };
        // Start, 20 flows, the final checkpoint, and a timed checkpoint for every 5 s the calls took.
        var last = LastSeq(_orders);
        Assert.InRange(last, 22, 30);
        var (exit, output) = await Cli.RunAsync("meshctl", args);
        Assert.True(exit == 0, output);
        Assert.Contains($"witnessed seq {last}", output, StringComparison.Ordinal);

        // Cut the tail at a line boundary: the final checkpoint and the last five records go.
        var file = FlowLogFormat.Files(_orders.FlowDirectory!)[0];
        var lines = File.ReadAllLines(file);
        File.WriteAllLines(file, lines[..^6]);
        var (aloneExit, alone) = await Cli.RunAsync("meshctl", "flows", "verify", _orders.FlowDirectory!, "--bundle", _mesh.Data.TrustBundle);
        Assert.True(aloneExit == 0, alone); // the log alone cannot tell

        (exit, output) = await Cli.RunAsync("meshctl", args);
        Assert.Equal(1, exit);
        Assert.Contains($"cut short of a witnessed checkpoint: the log ends at seq {last - 6}, but the control plane witnessed a signed record at seq {last}", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MeshctlSuggestsALintCleanPolicyFromTheFlowsAndWhatIfShowsWhoAProposalWouldBreak()
    {
        await CallAsync(6, "orders");
        Assert.True(await Eventually.TrueAsync(() => Flows(_orders, "inbound").Count == 6));
        // The mesh's directory then holds every record twice, the sidecar's log and the control plane's copy:
        // each counts once.
        var copy = _mesh.Data.CollectedFlowLog(_orders.Identity.ToString());
        Assert.True(await Eventually.TrueAsync(() => FlowLogReader.Records(copy).Count(r => r.Text("kind") == "flow") == 6));
        var suggested = Path.Combine(_temp.Path, "suggested", "orders.yaml");
        Directory.CreateDirectory(Path.GetDirectoryName(suggested)!);

        var (exit, output) = await Cli.RunAsync("meshctl", "policy", "suggest", "--flows", _mesh.Directory, "--out", suggested);
        Assert.True(exit == 0, output);
        Assert.Contains("paths: [\"/orders/*\"]", File.ReadAllText(suggested), StringComparison.Ordinal);
        (exit, output) = await Cli.RunAsync("meshctl", "policy", "lint", suggested);
        Assert.True(exit == 0, output);

        (exit, output) = await Cli.RunAsync("meshctl", "policy", "whatif", "--flows", _mesh.Directory, "--policies", suggested);
        Assert.True(exit == 0, output);
        Assert.Contains("0 of 6 recorded requests would be decided differently", output, StringComparison.Ordinal);

        File.WriteAllText(suggested, File.ReadAllText(suggested).Replace("spiffe://mesh.local/ns/shop/sa/frontend", "spiffe://mesh.local/ns/shop/sa/someone-else", StringComparison.Ordinal));
        (exit, output) = await Cli.RunAsync("meshctl", "policy", "whatif", "--flows", _mesh.Directory, "--policies", suggested);
        Assert.True(exit == 0, output);
        Assert.Contains("spiffe://mesh.local/ns/shop/sa/frontend -> spiffe://mesh.local/ns/shop/sa/orders: 6 requests allowed -> denied", output, StringComparison.Ordinal);
    }
}
