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
        var retry = TimeSpan.FromMilliseconds(200);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                using var call = channel.Registry.WatchServices(new WatchServicesRequest { KnownVersion = directory.Version }, cancellationToken: stoppingToken);
                await foreach (var table in call.ResponseStream.ReadAllAsync(stoppingToken))
                {
                    directory.Apply(table);
                    LogTable(logger, table.Version, table.Services.Count);
                    retry = TimeSpan.FromMilliseconds(200);
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
            if (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(retry, time, stoppingToken);
                retry = retry * 2 > TimeSpan.FromSeconds(5) ? TimeSpan.FromSeconds(5) : retry * 2;
            }
        }
    }

    [LoggerMessage(EventId = 110, Level = LogLevel.Information, Message = "service table version {Version}: {Services} services")]
    private static partial void LogTable(ILogger logger, long version, int services);

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "service stream from the control plane broke ({Reason}); keeping the last table and reconnecting")]
    private static partial void LogStreamFailed(ILogger logger, string reason);
}
