using System.Buffers;
using System.Globalization;
using MeshGuard.FlowLog;
using MeshGuard.Spiffe;
using Npgsql;

namespace MeshGuard.FlowStore;

/// <summary>
/// The flow store every control-plane replica shares, on PostgreSQL. Each line is kept verbatim with its
/// SHA-256 beside the columns a reviewer filters on (<see cref="FlowLineRow"/>). A segment is taken in one
/// transaction that locks its workload's chain row, checks the segment chains on to the (seq, hash) stored there,
/// copies its lines in (binary COPY) and moves the row on: two replicas given competing segments of one workload
/// take one and refuse the other, so a chain never forks. Lines are partitioned by the day they arrived (UTC,
/// the store's clock, never the sidecar's), so retention drops whole partitions.
/// </summary>
public sealed class PostgresFlowStore : IFlowSegmentStore, IAsyncDisposable
{
    internal const string Chains = "meshguard_flow_chains";
    internal const string Lines = "meshguard_flow_lines";
    internal const string Edges = "meshguard_flow_edges";
    internal const string HourlyEdges = "meshguard_flow_edges_hourly";

    // Any fixed number: replicas starting together create the schema (and a day's partition) one at a time.
    private const long SchemaLock = 0x6d657368_666c6f77;

    private readonly NpgsqlDataSource _source;
    private readonly TimeProvider _time;
    private readonly HashSet<DateOnly> _partitions = [];
    private long _linesCollected;
    private long _segmentsRefused;

    private PostgresFlowStore(NpgsqlDataSource source, TimeProvider time)
    {
        _source = source;
        _time = time;
        Logs = new StoredFlowLogs(source, ownsSource: false);
    }

    public long LinesCollected => Interlocked.Read(ref _linesCollected);

    public long SegmentsRefused => Interlocked.Read(ref _segmentsRefused);

    /// <summary>What the store holds, read through this store's connections: for the console and the chain audit.</summary>
    public StoredFlowLogs Logs { get; }

    /// <summary>Connects and creates what is missing of the schema; fails when the database cannot be reached.</summary>
    public static async Task<PostgresFlowStore> OpenAsync(FlowStoreLocation location, TimeProvider time, CancellationToken cancellation)
    {
        var store = new PostgresFlowStore(NpgsqlDataSource.Create(location.Connection.ConnectionString), time);
        try
        {
            await store.CreateSchemaAsync(cancellation);
        }
        catch
        {
            await store.DisposeAsync();
            throw;
        }
        return store;
    }

    private async Task CreateSchemaAsync(CancellationToken cancellation)
    {
        await using var connection = await _source.OpenConnectionAsync(cancellation);
        await using var transaction = await connection.BeginTransactionAsync(cancellation);
        await ExecuteAsync(connection, transaction, $"SELECT pg_advisory_xact_lock({SchemaLock})", cancellation);
        await ExecuteAsync(connection, transaction, $"""
            CREATE TABLE IF NOT EXISTS {Chains} (
                workload text PRIMARY KEY,
                chain integer NOT NULL,
                last_seq bigint NOT NULL,
                last_hash text NOT NULL,
                verified_seq bigint NOT NULL,
                lines bigint NOT NULL,
                updated timestamptz NOT NULL,
                audited timestamptz,
                audit_problems integer,
                audit_summary text);
            CREATE TABLE IF NOT EXISTS {Lines} (
                received timestamptz NOT NULL,
                workload text NOT NULL,
                chain integer NOT NULL,
                seq bigint NOT NULL,
                time timestamptz,
                kind text NOT NULL,
                direction text,
                source_id text,
                dest_id text,
                dest_service text,
                decision text,
                policy text,
                rule text,
                method text,
                path text,
                status integer,
                request_id text,
                hash bytea NOT NULL,
                line bytea NOT NULL
            ) PARTITION BY RANGE (received);
            CREATE INDEX IF NOT EXISTS {Lines}_chain ON {Lines} (workload, chain, seq);
            CREATE INDEX IF NOT EXISTS {Lines}_time ON {Lines} (time);
            CREATE INDEX IF NOT EXISTS {Lines}_source ON {Lines} (source_id, time);
            CREATE INDEX IF NOT EXISTS {Lines}_dest ON {Lines} (dest_id, time);
            {EdgeTable(Edges, "minute")}
            {EdgeTable(HourlyEdges, "hour")}
            """, cancellation);
        await transaction.CommitAsync(cancellation);
    }

    /// <summary>An edge-count table: calls by caller, callee, decision, policy and rule per <paramref name="period"/>.</summary>
    private static string EdgeTable(string name, string period) => $"""
        CREATE TABLE IF NOT EXISTS {name} (
            {period} timestamptz NOT NULL,
            source_id text NOT NULL,
            dest_id text NOT NULL,
            decision text NOT NULL,
            policy text NOT NULL,
            rule text NOT NULL,
            calls bigint NOT NULL,
            PRIMARY KEY ({period}, dest_id, source_id, decision, policy, rule));
        """;

    public async Task<long> HeldSeqAsync(string workloadId, CancellationToken cancellation)
    {
        await using var command = _source.CreateCommand($"SELECT last_seq FROM {Chains} WHERE workload = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = workloadId });
        return await command.ExecuteScalarAsync(cancellation) is long seq ? seq : 0;
    }

    public async Task<FlowSegmentVerdict> AppendAsync(string workloadId, ReadOnlyMemory<byte> lines, bool discontinuous, TrustBundle bundle, CancellationToken cancellation)
    {
        var received = _time.GetUtcNow();
        await EnsurePartitionAsync(DateOnly.FromDateTime(received.UtcDateTime), cancellation);
        await using var connection = await _source.OpenConnectionAsync(cancellation);
        await using var transaction = await connection.BeginTransactionAsync(cancellation);
        await using (var create = new NpgsqlCommand(
            $"INSERT INTO {Chains} (workload, chain, last_seq, last_hash, verified_seq, lines, updated) VALUES ($1, 0, 0, '', 0, 0, $2) ON CONFLICT (workload) DO NOTHING",
            connection, transaction))
        {
            create.Parameters.Add(new NpgsqlParameter { Value = workloadId });
            create.Parameters.Add(new NpgsqlParameter { Value = received });
            await create.ExecuteNonQueryAsync(cancellation);
        }
        int chain;
        (long Seq, string Hash)? held;
        // The row lock is what keeps one chain: a second replica's segment for this workload waits here for the
        // first one's commit, then checks against where that one left the chain.
        await using (var locked = new NpgsqlCommand($"SELECT chain, last_seq, last_hash FROM {Chains} WHERE workload = $1 FOR UPDATE", connection, transaction))
        {
            locked.Parameters.Add(new NpgsqlParameter { Value = workloadId });
            await using var reader = await locked.ExecuteReaderAsync(cancellation);
            await reader.ReadAsync(cancellation);
            chain = reader.GetInt32(0);
            var seq = reader.GetInt64(1);
            held = seq > 0 ? (seq, reader.GetString(2)) : null;
        }
        // Pooled: sized per segment it would be a large-object array per segment (a 1 MiB segment holds ~3,000 lines).
        using var hashes = new PooledBufferWriter(lines.Length / 8);
        var verdict = FlowSegmentCheck.Check(lines, held, discontinuous, bundle, workloadId, hashes);
        if (verdict.Refusal is not null)
        {
            await transaction.RollbackAsync(cancellation);
            Interlocked.Increment(ref _segmentsRefused);
            return verdict;
        }
        if (discontinuous && held is not null)
        {
            chain++;
        }
        var edges = await CopyLinesAsync(connection, workloadId, chain, received, lines, hashes.WrittenMemory, cancellation);
        await CountEdgesAsync(connection, transaction, edges, cancellation);
        await using (var advance = new NpgsqlCommand(
            $"UPDATE {Chains} SET chain = $2, last_seq = $3, last_hash = $4, verified_seq = $3, lines = lines + $5, updated = $6 WHERE workload = $1",
            connection, transaction))
        {
            advance.Parameters.Add(new NpgsqlParameter { Value = workloadId });
            advance.Parameters.Add(new NpgsqlParameter { Value = chain });
            advance.Parameters.Add(new NpgsqlParameter { Value = verdict.LastSeq });
            advance.Parameters.Add(new NpgsqlParameter { Value = verdict.LastHash });
            advance.Parameters.Add(new NpgsqlParameter { Value = (long)verdict.Lines });
            advance.Parameters.Add(new NpgsqlParameter { Value = received });
            await advance.ExecuteNonQueryAsync(cancellation);
        }
        await transaction.CommitAsync(cancellation);
        Interlocked.Add(ref _linesCollected, verdict.Lines);
        return verdict;
    }

    /// <summary>
    /// The segment's lines into the lines table by binary COPY, each row written straight from its line
    /// (<see cref="FlowLineRow"/>) with the hash the check computed, and sent in buffers of about 64 KiB; the
    /// segment's inbound calls, counted from those rows.
    /// </summary>
    private static async Task<EdgeCounts> CopyLinesAsync(NpgsqlConnection connection, string workloadId, int chain, DateTimeOffset received, ReadOnlyMemory<byte> lines,
        ReadOnlyMemory<byte> hashes, CancellationToken cancellation)
    {
        await using var copy = await connection.BeginRawBinaryCopyAsync($"COPY {Lines} ({FlowLineRow.Columns}) FROM STDIN (FORMAT BINARY)", cancellation);
        var rows = new ArrayBufferWriter<byte>(CopyBuffer + 4096);
        var scratch = new ArrayBufferWriter<byte>(1024);
        var workload = System.Text.Encoding.UTF8.GetBytes(workloadId);
        var receivedMicros = FlowLineRow.Microseconds(received);
        var edges = new EdgeCounts();
        rows.Write(FlowLineRow.Header);
        var index = 0;
        foreach (var (_, bytes, _) in FlowLogFormat.Lines(lines))
        {
            FlowLineRow.Write(rows, receivedMicros, workload, chain, bytes.Span, hashes.Span.Slice(index++ * 32, 32), scratch, edges);
            if (rows.WrittenCount >= CopyBuffer)
            {
                await copy.WriteAsync(rows.WrittenMemory, cancellation);
                rows.ResetWrittenCount();
            }
        }
        rows.Write(FlowLineRow.Trailer);
        await copy.WriteAsync(rows.WrittenMemory, cancellation);
        return edges;
    }

    /// <summary>
    /// Adds the segment's inbound calls (<see cref="EdgeCounts"/>) to the edge counts (caller, callee, decision, policy,
    /// rule) per minute and per hour in the same transaction, so the console's graph of any window sums the hours it
    /// spans and the minutes of its first hour instead of reading every record, and always agrees with the lines
    /// stored. A no-caller record counts under the empty caller. Only this workload's segments touch its edges (the
    /// segment check holds its inbound records to it as the callee), and they hold its chain row.
    /// </summary>
    private static async Task CountEdgesAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, EdgeCounts edges, CancellationToken cancellation)
    {
        var calls = edges.Calls;
        if (calls.Count == 0)
        {
            return;
        }
        var minutes = new DateTime[calls.Count];
        var sources = new string[calls.Count];
        var dests = new string[calls.Count];
        var decisions = new string[calls.Count];
        var policies = new string[calls.Count];
        var rules = new string[calls.Count];
        var counts = new long[calls.Count];
        var i = 0;
        foreach (var (edge, n) in calls)
        {
            minutes[i] = FlowLineRow.Time(edge.Minute);
            (sources[i], dests[i], decisions[i], policies[i], rules[i], counts[i]) = (edge.Source, edge.Dest, edge.Decision, edge.Policy, edge.Rule, n);
            i++;
        }
        await using var count = new NpgsqlCommand($"""
            WITH counted AS (
                SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
                    AS c(minute, source_id, dest_id, decision, policy, rule, calls)),
            by_minute AS (
                INSERT INTO {Edges} (minute, source_id, dest_id, decision, policy, rule, calls)
                SELECT minute, source_id, dest_id, decision, policy, rule, calls FROM counted ORDER BY 1, 3, 2, 4, 5, 6
                ON CONFLICT (minute, dest_id, source_id, decision, policy, rule) DO UPDATE SET calls = {Edges}.calls + excluded.calls)
            INSERT INTO {HourlyEdges} (hour, source_id, dest_id, decision, policy, rule, calls)
            SELECT date_trunc('hour', minute), source_id, dest_id, decision, policy, rule, sum(calls) FROM counted GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 3, 2, 4, 5, 6
            ON CONFLICT (hour, dest_id, source_id, decision, policy, rule) DO UPDATE SET calls = {HourlyEdges}.calls + excluded.calls
            """, connection, transaction);
        count.Parameters.Add(new NpgsqlParameter { Value = minutes });
        count.Parameters.Add(new NpgsqlParameter { Value = sources });
        count.Parameters.Add(new NpgsqlParameter { Value = dests });
        count.Parameters.Add(new NpgsqlParameter { Value = decisions });
        count.Parameters.Add(new NpgsqlParameter { Value = policies });
        count.Parameters.Add(new NpgsqlParameter { Value = rules });
        count.Parameters.Add(new NpgsqlParameter { Value = counts });
        await count.ExecuteNonQueryAsync(cancellation);
    }

    private const int CopyBuffer = 64 * 1024;

    /// <summary>The partition of lines received on <paramref name="day"/> (UTC), and of the day after, made once.</summary>
    private async Task EnsurePartitionAsync(DateOnly day, CancellationToken cancellation)
    {
        lock (_partitions)
        {
            if (_partitions.Contains(day))
            {
                return;
            }
        }
        await using var connection = await _source.OpenConnectionAsync(cancellation);
        await using var transaction = await connection.BeginTransactionAsync(cancellation);
        await ExecuteAsync(connection, transaction, $"SELECT pg_advisory_xact_lock({SchemaLock})", cancellation);
        foreach (var d in new[] { day, day.AddDays(1) })
        {
            await ExecuteAsync(connection, transaction,
                $"CREATE TABLE IF NOT EXISTS {PartitionName(d)} PARTITION OF {Lines} FOR VALUES FROM ('{Iso(d)}') TO ('{Iso(d.AddDays(1))}')", cancellation);
        }
        await transaction.CommitAsync(cancellation);
        lock (_partitions)
        {
            _partitions.Add(day);
            _partitions.Add(day.AddDays(1));
        }
    }

    /// <summary>Drops the partitions of lines received before <paramref name="day"/>; returns the days dropped.</summary>
    public async Task<IReadOnlyList<DateOnly>> DropReceivedBeforeAsync(DateOnly day, CancellationToken cancellation)
    {
        var dropped = new List<DateOnly>();
        await using var connection = await _source.OpenConnectionAsync(cancellation);
        var names = new List<string>();
        await using (var list = new NpgsqlCommand(
            $"SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '{Lines}'::regclass", connection))
        await using (var reader = await list.ExecuteReaderAsync(cancellation))
        {
            while (await reader.ReadAsync(cancellation))
            {
                names.Add(reader.GetString(0));
            }
        }
        // The edge counts of calls made before the first day kept go with it.
        foreach (var (table, column) in new[] { (Edges, "minute"), (HourlyEdges, "hour") })
        {
            await using var edges = new NpgsqlCommand($"DELETE FROM {table} WHERE {column} < $1", connection);
            edges.Parameters.Add(new NpgsqlParameter { Value = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero) });
            await edges.ExecuteNonQueryAsync(cancellation);
        }
        foreach (var name in names)
        {
            if (DayOf(name) is { } d && d < day)
            {
                await ExecuteAsync(connection, null, $"DROP TABLE IF EXISTS {name}", cancellation);
                dropped.Add(d);
                lock (_partitions)
                {
                    _partitions.Remove(d);
                }
            }
        }
        dropped.Sort();
        return dropped;
    }

    internal static string PartitionName(DateOnly day) => $"{Lines}_{day.ToString("yyyyMMdd", CultureInfo.InvariantCulture)}";

    private static DateOnly? DayOf(string partition) =>
        partition.StartsWith(Lines + "_", StringComparison.Ordinal)
        && DateOnly.TryParseExact(partition.AsSpan(Lines.Length + 1), "yyyyMMdd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day) ? day : null;

    private static string Iso(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + " 00:00:00+00";

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, CancellationToken cancellation)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellation);
    }

    public ValueTask DisposeAsync() => _source.DisposeAsync();
}
