using MeshGuard.ControlPlane.Ca;
using MeshGuard.FlowStore;

namespace MeshGuard.ControlPlane.FlowCollection;

/// <summary>
/// Re-hashes every chain the shared flow store holds, line by line against its signatures and its chain row: segments
/// are checked on arrival, and this catches what was changed in the database itself afterwards (a line edited, deleted
/// or moved). Every interval, one replica at a time (a database lock); each result is kept on the chain row, so every
/// replica's console shows it. A broken chain is logged as a warning and
/// counted in meshguard_cp_flow_chains_broken.
/// </summary>
internal sealed partial class FlowStoreAudit(StoredFlowLogs logs, CertificateAuthority ca, TimeSpan every, TimeProvider time, ILogger<FlowStoreAudit> logger) : BackgroundService
{
    private int _broken;

    /// <summary>Chains the last audit this replica ran found broken (meshguard_cp_flow_chains_broken).</summary>
    public int Broken => Volatile.Read(ref _broken);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            // An interval first: a replica restarted (or a new one added) does not re-read every chain at once.
            await Task.Delay(every, time, stoppingToken);
            try
            {
                await AuditAsync(stoppingToken);
            }
            catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException or IOException)
            {
                LogFailed(logger, e.Message);
            }
        }
    }

    private async Task AuditAsync(CancellationToken cancellation)
    {
        await using var turn = await logs.TryTakeAuditTurnAsync(cancellation);
        if (turn is null)
        {
            return; // another replica is auditing now
        }
        var broken = 0;
        foreach (var workload in await logs.WorkloadsAsync(cancellation))
        {
            var check = await logs.VerifyAsync(workload, ca.Bundle, cancellation);
            await logs.RecordAuditAsync(check, time.GetUtcNow(), cancellation);
            if (check.ProblemCount > 0)
            {
                broken++;
                LogBroken(logger, workload, check.Summary);
            }
        }
        Volatile.Write(ref _broken, broken);
    }

    [LoggerMessage(EventId = 113, Level = LogLevel.Warning, Message = "flow store: the stored log of {Workload} does not verify: {Summary}")]
    private static partial void LogBroken(ILogger logger, string workload, string summary);

    [LoggerMessage(EventId = 114, Level = LogLevel.Warning, Message = "flow store: the chain audit could not run: {Reason}")]
    private static partial void LogFailed(ILogger logger, string reason);
}
