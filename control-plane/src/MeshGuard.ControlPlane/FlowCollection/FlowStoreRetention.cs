using MeshGuard.FlowStore;

namespace MeshGuard.ControlPlane.FlowCollection;

/// <summary>
/// Drops the shared flow store's days of received lines older than the retention, at start and every hour.
/// Every replica runs it; dropping a day another replica dropped first is nothing.
/// </summary>
internal sealed partial class FlowStoreRetention(PostgresFlowStore store, int days, TimeProvider time, ILogger<FlowStoreRetention> logger) : BackgroundService
{
    private static readonly TimeSpan Every = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var cut = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime).AddDays(-days);
            try
            {
                foreach (var day in await store.DropReceivedBeforeAsync(cut, stoppingToken))
                {
                    LogDropped(logger, day, days);
                }
            }
            catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException)
            {
                LogFailed(logger, e.Message);
            }
            await Task.Delay(Every, time, stoppingToken);
        }
    }

    [LoggerMessage(EventId = 111, Level = LogLevel.Information, Message = "flow store: dropped the lines received on {Day} (older than {Days} days)")]
    private static partial void LogDropped(ILogger logger, DateOnly day, int days);

    [LoggerMessage(EventId = 112, Level = LogLevel.Warning, Message = "flow store: retention could not run: {Reason}")]
    private static partial void LogFailed(ILogger logger, string reason);
}
