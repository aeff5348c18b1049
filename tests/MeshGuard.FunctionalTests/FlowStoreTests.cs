using MeshGuard.Ctl.Demo;
using MeshGuard.FlowLog;
using MeshGuard.FlowStore;
using MeshGuard.Tests.Common;
using Npgsql;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// meshctl over the shared flow store on a real PostgreSQL: every stored log verified, one exported as signed and
/// verified offline, and a line changed, a line deleted or two lines swapped in the database itself reported.
/// The logs are put in through the store as a replica puts them (chain checked, binary COPY).
/// </summary>
[Trait("Subject", "ControlPlaneStore")]
public sealed class FlowStoreTests : IAsyncLifetime
{
    private readonly TempDirectory _temp = new();
    private readonly TestCa _ca = new();
    private PostgresServer _database = null!;
    private string _bundle = null!;

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        _database = await PostgresServer.StartAsync(LocalMesh.FreePorts(1)[0]);
        _bundle = _temp.Combine("bundle.pem");
        await File.WriteAllTextAsync(_bundle, _ca.Bundle.ToPem());
    }

    public async Task DisposeAsync()
    {
        await _database.DisposeAsync();
        _temp.Dispose();
    }

    private static string Workload(string name) => $"spiffe://mesh.local/ns/{name}/sa/orders";

    /// <summary>A log of <paramref name="records"/> calls to the workload, a checkpoint every ten, put into the store; returns its directory.</summary>
    private async Task<string> StoreLogAsync(string name, int records)
    {
        var directory = TestFlowLog.WriteInbound(_temp.Combine(name), _ca, Workload(name), records);
        await using var store = await PostgresFlowStore.OpenAsync(FlowStoreLocation.Parse(_database.Url, out _)!, TimeProvider.System, default);
        foreach (var segment in TestFlowLog.Segments(directory))
        {
            var verdict = await store.AppendAsync(Workload(name), segment.Lines, segment.Discontinuous, _ca.Bundle, default);
            Assert.True(verdict.Refusal is null, verdict.Refusal);
        }
        return directory;
    }

    private async Task ExecuteAsync(string sql, string workload)
    {
        await using var connection = new NpgsqlConnection(_database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = workload });
        Assert.True(await command.ExecuteNonQueryAsync() > 0, sql);
    }

    [Fact]
    public async Task MeshctlQueriesAndSuggestsPolicyFromTheRecordsOfEveryStoredLog()
    {
        await StoreLogAsync("orders", 12);
        await StoreLogAsync("billing", 7);

        var (exit, output) = await Cli.RunAsync("meshctl", "flows", "query", "--flow-store", _database.Url, "--to", Workload("billing"), "--json");
        Assert.True(exit == 0, output);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(7, lines.Length);
        Assert.All(lines, l => Assert.Contains($"\"dest_id\":\"{Workload("billing")}\"", l, StringComparison.Ordinal));
        (exit, output) = await Cli.RunAsync("meshctl", "flows", "query", "--flow-store", _database.Url, "--from", TestFlowLog.Frontend, "--decision", "allow");
        Assert.True(exit == 0, output);
        Assert.Equal(1 + 19, output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);

        (exit, output) = await Cli.RunAsync("meshctl", "policy", "suggest", "--flow-store", _database.Url);
        Assert.True(exit == 0, output);
        Assert.Contains("from 19 recorded requests", output, StringComparison.Ordinal);
        Assert.Contains("namespace: orders", output, StringComparison.Ordinal);
        Assert.Contains("namespace: billing", output, StringComparison.Ordinal);
        Assert.Contains(TestFlowLog.Frontend, output, StringComparison.Ordinal);

        (exit, output) = await Cli.RunAsync("meshctl", "policy", "suggest", "--flow-store", _database.Url, "--flows", _temp.Path);
        Assert.NotEqual(0, exit);
        Assert.Contains("not both", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MeshctlVerifiesEveryStoredLogAndExportsOneAsSignedThatVerifiesOffline()
    {
        var ordersLog = await StoreLogAsync("orders", 25);
        await StoreLogAsync("billing", 12);

        var (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", "--flow-store", _database.Url, "--bundle", _bundle);
        Assert.True(exit == 0, output);
        Assert.Contains($"{Workload("orders")}: OK: 1 files, 25 flow records", output, StringComparison.Ordinal);
        Assert.Contains($"{Workload("billing")}: OK: 1 files, 12 flow records", output, StringComparison.Ordinal);
        Assert.DoesNotContain(_database.Url, output, StringComparison.Ordinal);

        var exported = _temp.Combine("exported");
        (exit, output) = await Cli.RunAsync("meshctl", "flows", "export", "--flow-store", _database.Url, "--workload", Workload("orders"), "--out", exported);
        Assert.True(exit == 0, output);
        Assert.Equal(TestFlowLog.Bytes(ordersLog), TestFlowLog.Bytes(exported));
        (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", exported, "--bundle", _bundle, "--require-signed-tail");
        Assert.True(exit == 0, output);
    }

    [Fact]
    public async Task ALineChangedOneDeletedOrTwoSwappedInTheDatabaseIsReportedAndTheUntouchedLogStillVerifies()
    {
        foreach (var name in new[] { "changed", "deleted", "swapped", "untouched" })
        {
            await StoreLogAsync(name, 20);
        }
        // Edits made in the database itself, past the replicas' checks.
        await ExecuteAsync("UPDATE meshguard_flow_lines SET line = convert_to(replace(convert_from(line, 'UTF8'), '/orders/', '/ordexs/'), 'UTF8') WHERE workload = $1 AND seq = 5", Workload("changed"));
        await ExecuteAsync("DELETE FROM meshguard_flow_lines WHERE workload = $1 AND seq = 7", Workload("deleted"));
        await ExecuteAsync("UPDATE meshguard_flow_lines SET seq = CASE seq WHEN 3 THEN 4 ELSE 3 END WHERE workload = $1 AND seq IN (3, 4)", Workload("swapped"));

        var (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", "--flow-store", _database.Url, "--bundle", _bundle);
        Assert.Equal(1, exit);
        Assert.Contains($"{Workload("changed")}: flows-000001.jsonl:5: seq 5: modified", output, StringComparison.Ordinal);
        Assert.Contains($"{Workload("deleted")}: flows-000001.jsonl:7: seq 8: missing", output, StringComparison.Ordinal);
        Assert.Matches($"{System.Text.RegularExpressions.Regex.Escape(Workload("swapped"))}: flows-000001.jsonl:4: seq 3: reordered", output);
        Assert.Contains($"{Workload("untouched")}: OK:", output, StringComparison.Ordinal);
        foreach (var name in new[] { "changed", "deleted", "swapped" })
        {
            Assert.Contains($"{Workload(name)}: FAILED:", output, StringComparison.Ordinal);
        }

        // One workload alone: only its report.
        (exit, output) = await Cli.RunAsync("meshctl", "flows", "verify", "--flow-store", _database.Url, "--workload", Workload("untouched"), "--bundle", _bundle);
        Assert.True(exit == 0, output);
        Assert.DoesNotContain(Workload("changed"), output, StringComparison.Ordinal);
    }
}
