using System.Security.Cryptography;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Ctl.Demo;
using MeshGuard.FlowLog;
using MeshGuard.FlowStore;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace MeshGuard.ControlPlane.Tests.FlowCollection;

/// <summary>
/// The shared flow store on a real PostgreSQL: segments kept line for line with their hash and a reviewer's
/// columns, only when they chain on; two replicas given competing continuations of one workload's log keep one
/// chain; a discontinuous segment starts a new chain; retention drops whole days of arrival.
/// </summary>
[Trait("Subject", "FlowStore")]
public sealed class PostgresFlowStoreTests : IClassFixture<PostgresFlowStoreTests.Database>, IDisposable
{
    /// <summary>One PostgreSQL server for the class; each test writes the logs of its own workload names.</summary>
    public sealed class Database : IAsyncLifetime
    {
        public PostgresServer Server { get; private set; } = null!;

        public FlowStoreLocation Location => FlowStoreLocation.Parse(Server.Url, out _)!;

        public async Task InitializeAsync() => Server = await PostgresServer.StartAsync(LocalMesh.FreePorts(1)[0]);

        public async Task DisposeAsync() => await Server.DisposeAsync();
    }

    private readonly Database _database;
    private readonly TempDirectory _root = new();
    private readonly CertificateAuthority _ca;
    private readonly TestCa _testCa;

    public PostgresFlowStoreTests(Database database)
    {
        _database = database;
        var data = new DataDirectory(_root.Combine("cp"));
        _ca = CertificateAuthority.LoadOrCreate(data, "mesh.local", TimeProvider.System);
        _testCa = TestCa.FromFiles("mesh.local", data.RootCertificate, data.RootKey, data.IntermediateCertificate, data.IntermediateKey);
    }

    public void Dispose() => _root.Dispose();

    private static string Workload(string name) => $"spiffe://mesh.local/ns/{name}/sa/orders";

    /// <summary>A log of <paramref name="records"/> inbound calls of <paramref name="workload"/>, a checkpoint every ten.</summary>
    private string WriteLog(string workload, int records, string? directory = null) =>
        TestFlowLog.WriteInbound(directory ?? _root.Combine(Guid.NewGuid().ToString("N")), _testCa, workload, records);

    private async Task<List<(long Seq, byte[] Line, byte[] Hash)>> StoredAsync(string workload)
    {
        await using var connection = new NpgsqlConnection(_database.Server.ConnectionString);
        await connection.OpenAsync();
        await using var query = new NpgsqlCommand("SELECT seq, line, hash FROM meshguard_flow_lines WHERE workload = $1 ORDER BY chain, seq", connection);
        query.Parameters.Add(new NpgsqlParameter { Value = workload });
        await using var reader = await query.ExecuteReaderAsync();
        var rows = new List<(long, byte[], byte[])>();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetInt64(0), (byte[])reader[1], (byte[])reader[2]));
        }
        return rows;
    }

    /// <summary>Every segment of <paramref name="log"/> into <paramref name="store"/>, each one taken.</summary>
    private async Task StoreAllAsync(PostgresFlowStore store, string workload, string log)
    {
        foreach (var segment in TestFlowLog.Segments(log))
        {
            var verdict = await store.AppendAsync(workload, segment.Lines, segment.Discontinuous, _ca.Bundle, default);
            Assert.True(verdict.Refusal is null, verdict.Refusal);
        }
    }

    private static byte[] Joined(IEnumerable<(long Seq, byte[] Line, byte[] Hash)> rows) => rows.SelectMany(r => r.Line.Append((byte)'\n')).ToArray();

    [Fact]
    public async Task SegmentsThatChainOnAreKeptLineForLineWithTheirHashAndTheColumnsAReviewerFiltersOn()
    {
        var orders = Workload("kept");
        var log = WriteLog(orders, 25);
        await using var store = await PostgresFlowStore.OpenAsync(_database.Location, TimeProvider.System, default);
        await StoreAllAsync(store, orders, log);

        var rows = await StoredAsync(orders);
        Assert.Equal(TestFlowLog.Bytes(log), Joined(rows));
        Assert.All(rows, r => Assert.Equal(SHA256.HashData(r.Line), r.Hash));
        var lastSeq = FlowLogVerifier.Verify(log, _ca.Bundle).LastSeq ?? -1;
        Assert.Equal(lastSeq, await store.HeldSeqAsync(orders, default));
        Assert.Equal(rows.Count, store.LinesCollected);
        var edge = Assert.Single(await store.Logs.CallsAsync(DateTimeOffset.UtcNow.AddMinutes(-5), default, destination: orders));
        Assert.Equal((TestFlowLog.Frontend, "allow", "shop/orders-callers", "frontend", 25L), (edge.Source, edge.Decision, edge.Policy, edge.Rule, edge.Calls));
        Assert.Empty(await store.Logs.CallsAsync(DateTimeOffset.UtcNow.AddMinutes(-5), default, source: "", destination: orders));
        Assert.Equal(25, await store.Logs.CountAsync(new StoredFlowFilter(Destination: orders, Decision: "allow"), 100, default));
        Assert.Equal(11, await store.Logs.CountAsync(new StoredFlowFilter(Destination: orders), 10, default));

        await using var connection = new NpgsqlConnection(_database.Server.ConnectionString);
        await connection.OpenAsync();
        await using var flows = new NpgsqlCommand(
            "SELECT count(*), min(source_id), min(dest_id), min(decision), min(method), min(policy), min(rule), min(status), count(time) FROM meshguard_flow_lines WHERE workload = $1 AND kind = 'flow'", connection);
        flows.Parameters.Add(new NpgsqlParameter { Value = orders });
        await using (var reader = await flows.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            Assert.Equal(25, reader.GetInt64(0));
            Assert.Equal((TestFlowLog.Frontend, orders, "allow", "GET", "shop/orders-callers", "frontend", 200, 25L),
                (reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetString(5), reader.GetString(6), reader.GetInt32(7), reader.GetInt64(8)));
        }
        await using var chain = new NpgsqlCommand("SELECT last_seq, verified_seq, lines FROM meshguard_flow_chains WHERE workload = $1", connection);
        chain.Parameters.Add(new NpgsqlParameter { Value = orders });
        await using var chainRow = await chain.ExecuteReaderAsync();
        await chainRow.ReadAsync();
        Assert.Equal((lastSeq, lastSeq, (long)rows.Count), (chainRow.GetInt64(0), chainRow.GetInt64(1), chainRow.GetInt64(2)));
    }

    [Fact]
    public async Task ASegmentThatDoesNotChainOnOrIsAnotherWorkloadsIsRefusedAndLeavesWhatIsStoredAsItWas()
    {
        var orders = Workload("refused");
        var log = WriteLog(orders, 10);
        await using var store = await PostgresFlowStore.OpenAsync(_database.Location, TimeProvider.System, default);
        var first = TestFlowLog.Segments(log);
        foreach (var segment in first)
        {
            Assert.Null((await store.AppendAsync(orders, segment.Lines, false, _ca.Bundle, default)).Refusal);
        }
        var held = await StoredAsync(orders);

        WriteLog(orders, 10, log);
        var following = TestFlowLog.Segments(log, first[^1].LastSeq + 1)[0];
        WriteLog(orders, 10, log);
        FlowLogSegment[] next = [following, TestFlowLog.Segments(log, following.LastSeq + 1)[0]];
        // Skipping the first new segment: the second starts past where the store's chain ends.
        var skipped = await store.AppendAsync(orders, next[1].Lines, false, _ca.Bundle, default);
        Assert.StartsWith("line 1 has seq", skipped.Refusal, StringComparison.Ordinal);
        // Another workload handing in orders' log.
        var other = await store.AppendAsync(Workload("someone-else"), next[0].Lines, false, _ca.Bundle, default);
        Assert.Contains("is not a record of the caller", other.Refusal, StringComparison.Ordinal);
        // A line changed in transit.
        var changed = next[0].Lines.ToArray();
        changed[Array.IndexOf(changed, (byte)'/') + 1] ^= 1;
        Assert.NotNull((await store.AppendAsync(orders, changed, false, _ca.Bundle, default)).Refusal);

        Assert.Equal(Joined(held), Joined(await StoredAsync(orders)));
        Assert.Empty(await StoredAsync(Workload("someone-else")));
        Assert.Equal(3, store.SegmentsRefused);
    }

    [Fact]
    public async Task TwoReplicasGivenCompetingContinuationsOfOneLogKeepOneChainThatVerifies()
    {
        var orders = Workload("forked");
        var log = WriteLog(orders, 10);
        await using var replicaA = await PostgresFlowStore.OpenAsync(_database.Location, TimeProvider.System, default);
        await using var replicaB = await PostgresFlowStore.OpenAsync(_database.Location, TimeProvider.System, default);
        var start = TestFlowLog.Segments(log);
        foreach (var segment in start)
        {
            Assert.Null((await replicaA.AppendAsync(orders, segment.Lines, false, _ca.Bundle, default)).Refusal);
        }
        for (var round = 0; round < 10; round++)
        {
            // Two logs that were one until now, each continued with records of its own, both signed by orders:
            // each continuation chains on to what the store holds.
            var held = await replicaA.HeldSeqAsync(orders, default);
            var copy = _root.Combine($"fork-{round}");
            CopyDirectory(log, copy);
            WriteLog(orders, 10, log);
            WriteLog(orders, 12, copy);
            var mine = TestFlowLog.Segments(log, held + 1)[0];
            var theirs = TestFlowLog.Segments(copy, held + 1)[0];
            var verdicts = await Task.WhenAll(
                Task.Run(() => replicaA.AppendAsync(orders, mine.Lines, false, _ca.Bundle, default)),
                Task.Run(() => replicaB.AppendAsync(orders, theirs.Lines, false, _ca.Bundle, default)));
            Assert.Single(verdicts, v => v.Refusal is null);
            if (verdicts[0].Refusal is not null)
            {
                // The other one won: this log now follows the copy, as a sidecar that lost the race would start anew.
                Directory.Delete(log, recursive: true);
                log = copy;
            }
        }

        // What is stored is one log: each line chains on to the one before, and the copy verifies as the original.
        var rows = await StoredAsync(orders);
        Assert.Equal(rows.Select(r => r.Seq), Enumerable.Range(1, rows.Count).Select(i => (long)i));
        var exported = _root.Combine("exported");
        Directory.CreateDirectory(exported);
        await File.WriteAllBytesAsync(Path.Combine(exported, FlowLogFormat.FileName(1)), Joined(rows));
        var report = FlowLogVerifier.Verify(exported, _ca.Bundle);
        Assert.True(report.IsOk, string.Join("\n", report.Problems));
        Assert.Equal(TestFlowLog.Bytes(log), Joined(rows));
        // The graph's counts are of the stored lines alone: a refused continuation added none.
        Assert.Equal(report.Flows, await CallsToAsync(replicaA, orders));
    }

    /// <summary>The calls to <paramref name="callee"/> in the store's per-minute edge counts (what the console's graph sums).</summary>
    private static async Task<long> CallsToAsync(PostgresFlowStore store, string callee) =>
        (await store.Logs.CallsAsync(DateTimeOffset.MinValue, default, destination: callee)).Sum(static e => e.Calls);

    [Fact]
    public async Task ADiscontinuousSegmentStartsANewChainAndLeavesTheOldOneWhole()
    {
        var orders = Workload("restarted");
        var log = WriteLog(orders, 10);
        await using var store = await PostgresFlowStore.OpenAsync(_database.Location, TimeProvider.System, default);
        foreach (var segment in TestFlowLog.Segments(log))
        {
            Assert.Null((await store.AppendAsync(orders, segment.Lines, false, _ca.Bundle, default)).Refusal);
        }
        // The sidecar lost its log (a new volume): it starts again at seq 1 and says the segment is discontinuous.
        var fresh = WriteLog(orders, 5);
        var again = TestFlowLog.Segments(fresh)[0];
        Assert.NotNull((await store.AppendAsync(orders, again.Lines, false, _ca.Bundle, default)).Refusal);
        Assert.Null((await store.AppendAsync(orders, again.Lines, true, _ca.Bundle, default)).Refusal);

        await using var connection = new NpgsqlConnection(_database.Server.ConnectionString);
        await connection.OpenAsync();
        await using var chains = new NpgsqlCommand("SELECT chain, count(*), max(seq) FROM meshguard_flow_lines WHERE workload = $1 GROUP BY chain ORDER BY chain", connection);
        chains.Parameters.Add(new NpgsqlParameter { Value = orders });
        await using var reader = await chains.ExecuteReaderAsync();
        var found = new List<(int, long, long)>();
        while (await reader.ReadAsync())
        {
            found.Add((reader.GetInt32(0), reader.GetInt64(1), reader.GetInt64(2)));
        }
        var oldLast = FlowLogVerifier.Verify(log, _ca.Bundle).LastSeq ?? -1;
        var newLast = FlowLogVerifier.Verify(fresh, _ca.Bundle).LastSeq ?? -1;
        Assert.Equal([(0, oldLast, oldLast), (1, newLast, newLast)], found);
        Assert.Equal(newLast, await store.HeldSeqAsync(orders, default));
    }

    [Fact]
    public async Task RetentionDropsTheDaysReceivedBeforeTheCutAndKeepsTheRest()
    {
        var orders = Workload("retained");
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 10, 12, 0, 0, TimeSpan.Zero));
        await using var store = await PostgresFlowStore.OpenAsync(_database.Location, time, default);
        var log = WriteLog(orders, 10);
        var first = TestFlowLog.Segments(log)[0];
        WriteLog(orders, 10, log);
        var second = TestFlowLog.Segments(log, first.LastSeq + 1)[0];
        FlowLogSegment[] segments = [first, second];
        Assert.Null((await store.AppendAsync(orders, first.Lines, false, _ca.Bundle, default)).Refusal);
        time.Advance(TimeSpan.FromDays(1));
        Assert.Null((await store.AppendAsync(orders, second.Lines, false, _ca.Bundle, default)).Refusal);

        var dropped = await store.DropReceivedBeforeAsync(new DateOnly(2026, 1, 11), default);
        Assert.Equal([new DateOnly(2026, 1, 10)], dropped);
        var rows = await StoredAsync(orders);
        Assert.Equal(segments[1].FirstSeq, rows[0].Seq);
        Assert.Equal(segments[1].LastSeq, rows[^1].Seq);
        // The chain row still knows where the log ends: the next segment chains on.
        Assert.Equal(segments[1].LastSeq, await store.HeldSeqAsync(orders, default));
        Assert.Empty(await store.DropReceivedBeforeAsync(new DateOnly(2026, 1, 11), default));
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }
    }

    private async Task ExecuteAsync(string sql, params object[] values)
    {
        await using var connection = new NpgsqlConnection(_database.Server.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task TheStoresOwnVerificationFindsALineChangedOrATailDeletedInTheDatabaseAndTheAuditIsKeptForTheConsole()
    {
        var orders = Workload("audited");
        var log = WriteLog(orders, 30);
        await using var store = await PostgresFlowStore.OpenAsync(_database.Location, TimeProvider.System, default);
        await StoreAllAsync(store, orders, log);
        var intact = await store.Logs.VerifyAsync(orders, _ca.Bundle, default);
        var offline = FlowLogVerifier.Verify(log, _ca.Bundle);
        Assert.True(intact.ProblemCount == 0, intact.Summary);
        Assert.Equal((offline.LastSeq, offline.Flows, offline.Checkpoints, offline.Workload), (intact.Report.LastSeq, intact.Report.Flows, intact.Report.Checkpoints, intact.Report.Workload));
        var newest = await store.Logs.FlowsAsync(new StoredFlowFilter(Source: TestFlowLog.Frontend, Destination: orders, NewestFirst: true, Limit: 5), default).ToListAsync();
        Assert.Equal(5, newest.Count);
        Assert.All(newest, f => Assert.Equal(orders, f.Workload));
        Assert.Empty(await store.Logs.FlowsAsync(new StoredFlowFilter(Destination: orders, Decision: "deny"), default).ToListAsync());
        var chain = Assert.Single(await store.Logs.ChainsAsync(default), c => c.Workload == orders);
        var unaudited = MeshGuard.ControlPlane.FlowCollection.StoredCollectedFlows.Verification(chain);
        Assert.True(unaudited.Verified);
        Assert.Contains("not audited", unaudited.Summary, StringComparison.Ordinal);

        // A decision changed in the database: the line no longer hashes to the next line's prev.
        await ExecuteAsync("UPDATE meshguard_flow_lines SET line = convert_to(replace(convert_from(line, 'UTF8'), '\"allow\"', '\"deny\"'), 'UTF8') WHERE workload = $1 AND seq = 5 AND kind = 'flow'", orders);
        var changed = await store.Logs.VerifyAsync(orders, _ca.Bundle, default);
        var problem = Assert.Single(changed.Report.Problems);
        Assert.Equal(FlowProblemKind.Modified, problem.Kind);
        Assert.Equal(5, problem.Seq);
        await store.Logs.RecordAuditAsync(changed, DateTimeOffset.UtcNow, default);
        var shown = MeshGuard.ControlPlane.FlowCollection.StoredCollectedFlows.Verification(Assert.Single(await store.Logs.ChainsAsync(default), c => c.Workload == orders));
        Assert.False(shown.Verified);
        Assert.Contains("modified", shown.Summary, StringComparison.Ordinal);

        // The last lines deleted: every line left chains, but the chain row says the log goes on.
        await ExecuteAsync("DELETE FROM meshguard_flow_lines WHERE workload = $1 AND seq > $2", orders, chain.LastSeq - 3);
        var cut = await store.Logs.VerifyAsync(orders, _ca.Bundle, default);
        Assert.Contains($"ends at seq {chain.LastSeq} in chain 0; its lines end at seq {chain.LastSeq - 3}", cut.RowMismatch, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheEdgeCountsAreTheInboundCallsOfTheStoredRowsPerMinuteAndHourByCallerCalleeDecisionPolicyAndRule()
    {
        var orders = Workload("edges");
        var directory = _root.Combine("edges");
        // Over an hour's end; runs of one edge and edges that alternate; no caller, no decision, an escaped policy, a
        // caller PostgreSQL text cannot hold (NULL, so the empty caller), and a call of its own, which is not counted.
        var start = new DateTimeOffset(2026, 12, 3, 10, 58, 30, TimeSpan.Zero);
        FlowRecord Call(int second, string? source, string? decision, string? policy = "shop/orders-callers", string? rule = "frontend",
            FlowDirection direction = FlowDirection.Inbound, string? dest = "") => new()
            {
                Time = start.AddSeconds(second),
                Direction = direction,
                SourceId = source,
                DestId = dest == "" ? orders : dest,
                Method = "GET",
                Path = "/orders/1",
                Status = decision == "allow" ? 200 : 403,
                Decision = decision,
                Policy = policy,
                Rule = rule,
            };
        var records = new List<FlowRecord>();
        for (var i = 0; i < 40; i++)
        {
            records.Add(Call(i * 5, TestFlowLog.Frontend, "allow"));
            if (i % 3 == 0)
            {
                records.Add(Call(i * 5 + 1, "spiffe://mesh.local/ns/billing/sa/invoices", "deny", policy: null, rule: null));
            }
        }
        records.Add(Call(7, null, "deny", policy: null, rule: null));
        records.Add(Call(8, TestFlowLog.Frontend, null));
        records.Add(Call(9, TestFlowLog.Frontend, "allow", policy: "shop/\"odd\" \u00e9"));
        records.Add(Call(10, "spiffe://mesh.local/ns/x/sa/a\0b", "allow"));
        records.Add(Call(11, orders, "allow", direction: FlowDirection.Outbound, dest: TestFlowLog.Frontend) with { Decision = null, Policy = null, Rule = null });
        using (var writer = new FlowLogWriter(directory, new TestCheckpointSigner(_testCa, orders), TimeProvider.System, 10 * 1024 * 1024, 100))
        {
            writer.Open();
            foreach (var (record, i) in records.Select((r, i) => (r, i)))
            {
                writer.Append(record);
                if (i % 17 == 16)
                {
                    writer.Checkpoint(); // several segments
                }
            }
            writer.Checkpoint();
            writer.Flush();
        }
        await using var store = await PostgresFlowStore.OpenAsync(_database.Location, TimeProvider.System, default);
        await StoreAllAsync(store, orders, directory);

        // What the rows themselves say, grouped by the database: the counts must be exactly that.
        await using var connection = new NpgsqlConnection(_database.Server.ConnectionString + ";Options=-c TimeZone=UTC");
        await connection.OpenAsync();
        async Task<List<string>> RowsAsync(string sql)
        {
            await using var query = new NpgsqlCommand(sql, connection);
            query.Parameters.Add(new NpgsqlParameter { Value = orders });
            await using var reader = await query.ExecuteReaderAsync();
            var rows = new List<string>();
            while (await reader.ReadAsync())
            {
                rows.Add(string.Join(" | ", Enumerable.Range(0, reader.FieldCount).Select(f => Convert.ToString(reader.GetValue(f), System.Globalization.CultureInfo.InvariantCulture))));
            }
            return rows;
        }
        const string Grouped = """
            SELECT date_trunc('{0}', time), coalesce(source_id, ''), dest_id, coalesce(decision, 'deny'), coalesce(policy, ''), coalesce(rule, ''), count(*)
            FROM meshguard_flow_lines WHERE workload = $1 AND kind = 'flow' AND direction = 'inbound' AND dest_id IS NOT NULL AND time IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
            """;
        const string Counted = "SELECT {0}, source_id, dest_id, decision, policy, rule, calls FROM {1} WHERE dest_id = $1 ORDER BY 1, 2, 3, 4, 5, 6";
        var byMinute = await RowsAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, Grouped, "minute"));
        Assert.Equal(byMinute, await RowsAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, Counted, "minute", "meshguard_flow_edges")));
        Assert.Equal(await RowsAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, Grouped, "hour")),
            await RowsAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, Counted, "hour", "meshguard_flow_edges_hourly")));
        // The cases above are there: an hour's end crossed, the empty caller, a call without decision counted as denied.
        Assert.Contains(byMinute, r => r.Contains("11:00:00", StringComparison.Ordinal));
        Assert.Contains(byMinute, r => r.Contains(" |  | ", StringComparison.Ordinal));
        Assert.Equal(records.Count(r => r.Direction == FlowDirection.Inbound),
            byMinute.Sum(r => long.Parse(r.Split(" | ")[^1], System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact]
    public async Task ColumnsOfEscapedFieldsAreStoredUnescapedAndAFieldPostgresTextCannotHoldIsNullWhileTheLineIsKeptWhole()
    {
        var orders = Workload("escaped");
        var directory = _root.Combine("escaped");
        var time = new DateTimeOffset(2026, 12, 3, 11, 22, 33, TimeSpan.Zero).AddTicks(1234567);
        using (var writer = new FlowLogWriter(directory, new TestCheckpointSigner(_testCa, orders), TimeProvider.System, 10 * 1024 * 1024, 100))
        {
            writer.Open();
            writer.Append(new FlowRecord
            {
                Time = time,
                Direction = FlowDirection.Inbound,
                RequestId = "a\0b",
                SourceId = TestFlowLog.Frontend,
                DestId = orders,
                Method = "GET",
                Path = "/caf\u00e9/\"quoted\"\\",
                Status = 200,
                Decision = "allow",
            });
            writer.Checkpoint();
            writer.Flush();
        }
        await using var store = await PostgresFlowStore.OpenAsync(_database.Location, TimeProvider.System, default);
        await StoreAllAsync(store, orders, directory);
        Assert.Equal(TestFlowLog.Bytes(directory), Joined(await StoredAsync(orders)));

        await using var connection = new NpgsqlConnection(_database.Server.ConnectionString);
        await connection.OpenAsync();
        await using var query = new NpgsqlCommand("SELECT path, request_id, time, method, status FROM meshguard_flow_lines WHERE workload = $1 AND kind = 'flow'", connection);
        query.Parameters.Add(new NpgsqlParameter { Value = orders });
        await using var reader = await query.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal("/caf\u00e9/\"quoted\"\\", reader.GetString(0));
        Assert.True(reader.IsDBNull(1));
        Assert.Equal(time.AddTicks(-(time.Ticks % 10)), reader.GetFieldValue<DateTimeOffset>(2));
        Assert.Equal(("GET", 200), (reader.GetString(3), reader.GetInt32(4)));
    }

    [Fact]
    public async Task OneReplicaAtATimeHoldsTheAuditTurnAndAnEndedTurnIsFreeForAnother()
    {
        await using var replicaA = await PostgresFlowStore.OpenAsync(_database.Location, TimeProvider.System, default);
        await using var replicaB = await PostgresFlowStore.OpenAsync(_database.Location, TimeProvider.System, default);
        var turn = await replicaA.Logs.TryTakeAuditTurnAsync(default);
        Assert.NotNull(turn);
        Assert.Null(await replicaB.Logs.TryTakeAuditTurnAsync(default));
        await turn.DisposeAsync();
        // A's connection went back to its pool, idle: the lock must not have gone with it.
        var next = await replicaB.Logs.TryTakeAuditTurnAsync(default);
        Assert.NotNull(next);
        await next.DisposeAsync();
    }
}
