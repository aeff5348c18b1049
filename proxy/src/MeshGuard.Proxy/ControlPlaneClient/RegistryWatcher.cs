using Grpc.Core;
using MeshGuard.Contracts.V1;
using MeshGuard.Proxy.Outbound;

namespace MeshGuard.Proxy.ControlPlaneClient;

/// <summary>
/// Keeps the service directory current from the control plane's service stream; reconnects with backoff
/// and resumes from the last version it has. While the control plane is away the last table stays in force.
/// </summary>
internal sealed partial class RegistryWatcher(ControlPlaneChannel channel, ServiceDirectory directory, TimeProvider time, ILogger<RegistryWatcher> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = new Backoff(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(5));
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                using var call = channel.Registry.WatchServices(new WatchServicesRequest { KnownVersion = directory.Version }, cancellationToken: stoppingToken);
                await foreach (var table in call.ResponseStream.ReadAllAsync(stoppingToken))
                {
                    directory.Apply(table);
                    LogTable(logger, table.Version, table.Services.Count);
                    backoff.Reset();
                }
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogStreamFailed(logger, e is RpcException rpc ? rpc.Status.Detail : e.Message);
            }
            await backoff.DelayAsync(time, stoppingToken);
        }
    }

    [LoggerMessage(EventId = 110, Level = LogLevel.Information, Message = "service table version {Version}: {Services} services")]
    private static partial void LogTable(ILogger logger, long version, int services);

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "service stream from the control plane broke ({Reason}); keeping the last table and reconnecting")]
    private static partial void LogStreamFailed(ILogger logger, string reason);
}
