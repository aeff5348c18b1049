using System.Data;
using MeshGuard.FlowLog;
using MeshGuard.Spiffe;
using Npgsql;

namespace MeshGuard.FlowStore;

/// <summary>
/// The logs the shared flow store holds, per workload: their chain rows, their lines exactly as signed (an export, a
/// verification, the newest flow records) and what the last audit of each found. Everything here reads, except the
/// audit's own result; so meshctl opens it with an account that may only SELECT.
/// </summary>
public sealed class StoredFlowLogs : IAsyncDisposable
{
    // Any fixed number other than the schema's: one replica at a time re-hashes the chains.
    private const long AuditLock = 0x6d657368_61756474;

    private readonly NpgsqlDataSource _source;
    private readonly bool _ownsSource;

    internal StoredFlowLogs(NpgsqlDataSource source, bool ownsSource)
    {
        _source = source;
        _ownsSource = ownsSource;
    }

    /// <summary>For reading only (meshctl): no schema is created. Nothing is sent until the first query.</summary>
    public static StoredFlowLogs Open(FlowStoreLocation location) =>
        new(NpgsqlDataSource.Create(location.Connection.ConnectionString), ownsSource: true) { Location = location };

    /// <summary>Where the store is, when opened on its own (its password never shown).</summary>
    public FlowStoreLocation? Location { get; private init; }

    public override string ToString() => Location?.ToString() ?? "the flow store";

    /// <summary>Every workload the store holds lines of, by name.</summary>
    public async Task<IReadOnlyList<string>> WorkloadsAsync(CancellationToken cancellation) =>
        [.. (await ChainsAsync(cancellation)).Where(static c => c.Lines > 0).Select(static c => c.Workload)];

    /// <summary>Every workload's chain row, by workload.</summary>
    public async Task<IReadOnlyList<StoredChain>> ChainsAsync(CancellationToken cancellation)
    {
        await using var command = _source.CreateCommand($"{SelectChain} ORDER BY workload");
        await using var reader = await command.ExecuteReaderAsync(cancellation);
        var chains = new List<StoredChain>();
        while (await reader.ReadAsync(cancellation))
        {
            chains.Add(ReadChain(reader));
        }
        return chains;
    }

    private const string SelectChain =
        $"SELECT workload, chain, last_seq, last_hash, verified_seq, lines, updated, audited, audit_problems, audit_summary FROM {PostgresFlowStore.Chains}";

    private static async Task<StoredChain?> ChainAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string workloadId, CancellationToken cancellation)
    {
        await using var command = new NpgsqlCommand($"{SelectChain} WHERE workload = $1", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = workloadId });
        await using var reader = await command.ExecuteReaderAsync(cancellation);
        return await reader.ReadAsync(cancellation) ? ReadChain(reader) : null;
    }

    private static StoredChain ReadChain(NpgsqlDataReader reader) => new(
        reader.GetString(0), reader.GetInt32(1), reader.GetInt64(2), reader.GetString(3), reader.GetInt64(4), reader.GetInt64(5),
        reader.GetFieldValue<DateTimeOffset>(6),
        reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7),
        reader.IsDBNull(8) ? null : reader.GetInt32(8),
        reader.IsDBNull(9) ? null : reader.GetString(9));

    /// <summary>
    /// Walks <paramref name="workloadId"/>'s stored lines in (chain, seq) order, each chain named as the export names
    /// its file (flows-000001.jsonl for chain 0), and returns its chain row. Read in one snapshot with the chain row,
    /// so lines a sidecar uploads meanwhile are neither half seen nor taken for a mismatch.
    /// </summary>
    private async Task<StoredChain?> WalkAsync(string workloadId, Func<int, string, int, ReadOnlyMemory<byte>, Task> line, CancellationToken cancellation)
    {
        await using var connection = await _source.OpenConnectionAsync(cancellation);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellation);
        var row = await ChainAsync(connection, transaction, workloadId, cancellation);
        await using (var command = new NpgsqlCommand($"SELECT chain, line FROM {PostgresFlowStore.Lines} WHERE workload = $1 ORDER BY chain, seq", connection, transaction))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = workloadId });
            await using var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellation);
            var chain = -1;
            var file = "";
            var number = 0;
            while (await reader.ReadAsync(cancellation))
            {
                var lineChain = reader.GetInt32(0);
                if (lineChain != chain)
                {
                    chain = lineChain;
                    file = FlowLogFormat.FileName(chain + 1);
                    number = 0;
                }
                await line(chain, file, ++number, await reader.GetFieldValueAsync<byte[]>(1, cancellation));
            }
        }
        await transaction.CommitAsync(cancellation);
        return row;
    }

    /// <summary>
    /// Writes <paramref name="workloadId"/>'s stored lines into <paramref name="directory"/> exactly as they were
    /// signed, in the log's own files (flows-000001.jsonl for chain 0, the next file for each later chain), in seq
    /// order: <see cref="FlowLogVerifier"/> then checks them as it checks a sidecar's log, offline. Returns the chain
    /// row the lines were read with, and the number of lines written.
    /// </summary>
    public async Task<(StoredChain? Chain, long Lines)> ExportAsync(string workloadId, string directory, CancellationToken cancellation)
    {
        Directory.CreateDirectory(directory);
        StoredChain? row;
        FileStream? file = null;
        var current = "";
        long count = 0;
        try
        {
            row = await WalkAsync(workloadId, async (_, name, _, line) =>
            {
                if (name != current || file is null)
                {
                    if (file is not null)
                    {
                        await file.DisposeAsync();
                    }
                    current = name;
                    file = new FileStream(Path.Combine(directory, name), FileMode.Create, FileAccess.Write);
                }
                await file.WriteAsync(line, cancellation);
                file.WriteByte((byte)'\n');
                count++;
            }, cancellation);
        }
        finally
        {
            if (file is not null)
            {
                await file.DisposeAsync();
            }
        }
        return (row, count);
    }

    /// <summary>
    /// Checks <paramref name="workloadId"/>'s stored log as <see cref="FlowLogVerifier"/> checks a log's files, line by
    /// line as the rows arrive, and against its chain row: a line changed, deleted or moved in the database itself is
    /// reported where it breaks the chain.
    /// </summary>
    public async Task<StoredLogCheck> VerifyAsync(string workloadId, TrustBundle bundle, CancellationToken cancellation)
    {
        var verification = new FlowChainVerification(bundle);
        var lastChain = -1;
        var row = await WalkAsync(workloadId, (chain, name, number, line) =>
        {
            if (chain != lastChain)
            {
                verification.BeginFile();
                lastChain = chain;
            }
            verification.Line(name, number, line);
            return Task.CompletedTask;
        }, cancellation);
        var report = verification.Finish();
        return new StoredLogCheck(workloadId, report, row?.Mismatch(lastChain, report.LastSeq, report.LastHash));
    }

    /// <summary>Keeps what an audit of <paramref name="check"/>'s workload found on its chain row, for every replica's console.</summary>
    public async Task RecordAuditAsync(StoredLogCheck check, DateTimeOffset at, CancellationToken cancellation)
    {
        await using var command = _source.CreateCommand(
            $"UPDATE {PostgresFlowStore.Chains} SET audited = $2, audit_problems = $3, audit_summary = $4 WHERE workload = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = check.Workload });
        command.Parameters.Add(new NpgsqlParameter { Value = at });
        command.Parameters.Add(new NpgsqlParameter { Value = check.ProblemCount });
        command.Parameters.Add(new NpgsqlParameter { Value = check.Summary });
        await command.ExecuteNonQueryAsync(cancellation);
    }

    /// <summary>
    /// This replica's turn to audit, held until disposed; null while another replica holds it. The lock is the
    /// session's: it is released when the turn ends (a pooled connection would otherwise keep it while idle), and the
    /// server releases it with the session of a replica that dies mid-audit.
    /// </summary>
    public async Task<IAsyncDisposable?> TryTakeAuditTurnAsync(CancellationToken cancellation)
    {
        var connection = await _source.OpenConnectionAsync(cancellation);
        await using (var take = new NpgsqlCommand($"SELECT pg_try_advisory_lock({AuditLock})", connection))
        {
            if (await take.ExecuteScalarAsync(cancellation) is true)
            {
                return new AuditTurn(connection);
            }
        }
        await connection.DisposeAsync();
        return null;
    }

    private sealed class AuditTurn(NpgsqlConnection connection) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                await using var release = new NpgsqlCommand($"SELECT pg_advisory_unlock({AuditLock})", connection);
                await release.ExecuteNonQueryAsync();
            }
            catch (NpgsqlException)
            {
                // The session is gone, and its lock with it.
            }
            finally
            {
                await connection.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// The flow records <paramref name="filter"/> selects, each with the workload whose log holds it and its line as
    /// signed: by the reviewer's columns and their indexes, never by reading a log.
    /// </summary>
    public async IAsyncEnumerable<(string Workload, byte[] Line)> FlowsAsync(StoredFlowFilter filter, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellation)
    {
        await using var command = _source.CreateCommand();
        command.CommandText = $"SELECT workload, line FROM {PostgresFlowStore.Lines} WHERE {Where(filter, command)} ORDER BY time {(filter.NewestFirst ? "DESC" : "ASC")}"
            + (filter.Limit is { } limit ? " LIMIT " + limit.ToString(System.Globalization.CultureInfo.InvariantCulture) : "");
        await using var reader = await command.ExecuteReaderAsync(cancellation);
        while (await reader.ReadAsync(cancellation))
        {
            yield return (reader.GetString(0), reader.GetFieldValue<byte[]>(1));
        }
    }

    /// <summary>
    /// Inbound calls by caller, callee, decision, policy and rule since <paramref name="since"/> (to the minute: the
    /// minute it falls in counts whole), from the counts kept at ingest: the minutes up to the first whole hour, then
    /// whole hours, so a day is a few dozen rows per edge. A caller without an identity is "", as are a missing policy
    /// and rule. Given, <paramref name="source"/>, <paramref name="destination"/> (an identity) and
    /// <paramref name="decision"/> must match.
    /// </summary>
    public async Task<IReadOnlyList<StoredCalls>> CallsAsync(DateTimeOffset since, CancellationToken cancellation,
        string? source = null, string? destination = null, string? decision = null)
    {
        await using var command = _source.CreateCommand();
        command.Parameters.Add(new NpgsqlParameter { Value = since });
        var match = new System.Text.StringBuilder();
        foreach (var (column, value) in new[] { ("source_id", source), ("dest_id", destination), ("decision", decision) })
        {
            if (value is not null)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = value });
                match.Append(System.Globalization.CultureInfo.InvariantCulture, $" AND {column} = ${command.Parameters.Count}");
            }
        }
        command.CommandText = $"""
            SELECT source_id, dest_id, decision, policy, rule, sum(calls)::bigint FROM (
                SELECT source_id, dest_id, decision, policy, rule, calls FROM {PostgresFlowStore.Edges}
                WHERE minute >= date_trunc('minute', $1::timestamptz) AND minute < date_trunc('hour', $1::timestamptz) + interval '1 hour'{match}
                UNION ALL
                SELECT source_id, dest_id, decision, policy, rule, calls FROM {PostgresFlowStore.HourlyEdges}
                WHERE hour >= date_trunc('hour', $1::timestamptz) + interval '1 hour'{match}) edges
            GROUP BY 1, 2, 3, 4, 5
            """;
        await using var reader = await command.ExecuteReaderAsync(cancellation);
        var calls = new List<StoredCalls>();
        while (await reader.ReadAsync(cancellation))
        {
            calls.Add(new StoredCalls(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetInt64(5)));
        }
        return calls;
    }

    /// <summary>
    /// How many flow records <paramref name="filter"/> selects (its order and limit aside), counted up to
    /// <paramref name="upTo"/> + 1 at most: a page says "more than" instead of counting a day of a busy mesh.
    /// </summary>
    public async Task<long> CountAsync(StoredFlowFilter filter, long upTo, CancellationToken cancellation)
    {
        await using var command = _source.CreateCommand();
        command.CommandText = $"SELECT count(*) FROM (SELECT 1 FROM {PostgresFlowStore.Lines} WHERE {Where(filter, command)} LIMIT {(upTo + 1).ToString(System.Globalization.CultureInfo.InvariantCulture)}) counted";
        return (long)(await command.ExecuteScalarAsync(cancellation))!;
    }

    /// <summary>The filter as SQL conditions, its values as the command's parameters.</summary>
    private static string Where(StoredFlowFilter filter, NpgsqlCommand command)
    {
        var where = new System.Text.StringBuilder("kind = 'flow'");
        void Condition(string sql, object value)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
            where.Append(" AND ").Append(sql.Replace("@", "$" + command.Parameters.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));
        }
        if (filter.Since is { } since)
        {
            Condition("time >= @", since);
        }
        if (filter.Direction is { } direction)
        {
            Condition("direction = @", direction);
        }
        if (filter.NoSource)
        {
            where.Append(" AND source_id IS NULL");
        }
        else if (filter.Source is { } source)
        {
            Condition("source_id = @", source);
        }
        if (filter.Destination is { } destination)
        {
            // An outbound call out of the mesh names no callee identity, only its address: read from the line then.
            Condition("(dest_id = @ OR dest_service = @ OR (dest_id IS NULL AND convert_from(line, 'UTF8')::jsonb ->> 'dest_addr' = @))", destination);
        }
        if (filter.Decision is { } decision)
        {
            Condition("decision = @", decision);
        }
        return where.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        if (_ownsSource)
        {
            await _source.DisposeAsync();
        }
    }
}

/// <summary>A workload's chain row: where its stored log ends, how far arrival checks verified it, and the last audit.</summary>
public sealed record StoredChain(
    string Workload, int Chain, long LastSeq, string LastHash, long VerifiedSeq, long Lines, DateTimeOffset Updated,
    DateTimeOffset? Audited, int? AuditProblems, string? AuditSummary)
{
    /// <summary>What is wrong when the stored lines end elsewhere than this row says (or with another line), else null.</summary>
    public string? Mismatch(int linesChain, long? linesLastSeq, string? linesLastHash) =>
        linesLastSeq != LastSeq || linesChain != Chain
            ? $"the store's chain row says the log ends at seq {LastSeq} in chain {Chain}; its lines end at seq {linesLastSeq?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "(none)"} in chain {linesChain}"
            : LastHash.Length > 0 && linesLastHash != LastHash
                ? $"the store's chain row says its last line (seq {LastSeq}) hashes to {LastHash}; the line stored there hashes to {linesLastHash}"
                : null;
}

/// <summary>A stored log checked line by line (<see cref="Report"/>) and against its chain row (<see cref="RowMismatch"/>).</summary>
public sealed record StoredLogCheck(string Workload, FlowLogReport Report, string? RowMismatch)
{
    public int ProblemCount => Report.Problems.Count + (RowMismatch is null ? 0 : 1);

    /// <summary>One line a reviewer reads: what was checked, or the first problem.</summary>
    public string Summary => RowMismatch is null ? Report.Summary
        : $"{ProblemCount} problem(s), first: {(Report.Problems.Count > 0 ? Report.Problems[0].ToString() : RowMismatch)}";
}

/// <summary>
/// Which flow records to read: each given field must match (a destination by identity, service, or the address of a
/// call that names no callee identity; <see cref="NoSource"/>: records without a caller identity); null reads all.
/// </summary>
public sealed record StoredFlowFilter(
    DateTimeOffset? Since = null, string? Direction = null, string? Source = null, string? Destination = null, string? Decision = null,
    bool NewestFirst = false, int? Limit = null, bool NoSource = false);

/// <summary>Inbound calls from <see cref="Source"/> ("" without an identity) to <see cref="Destination"/>, decided by a policy's rule ("" where none).</summary>
public sealed record StoredCalls(string Source, string Destination, string Decision, string Policy, string Rule, long Calls);
