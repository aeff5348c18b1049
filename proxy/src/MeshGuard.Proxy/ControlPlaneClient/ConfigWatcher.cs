using Grpc.Core;
using MeshGuard.Contracts.V1;
using MeshGuard.Proxy.Config;

namespace MeshGuard.Proxy.ControlPlaneClient;

/// <summary>
/// Follows the control plane's signed snapshot stream, resuming from the version in force after every
/// reconnect, at the next replica when the one in use fails (backing off, jittered, after a full round).
/// While the control plane is away the last good snapshot stays in force (fail-static).
/// </summary>
internal sealed partial class ConfigWatcher(ControlPlaneChannel channel, SnapshotApplier applier, TimeProvider time, ILogger<ConfigWatcher> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = new Backoff(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(5));
        while (!stoppingToken.IsCancellationRequested)
        {
            var replica = channel.CurrentIndex;
            try
            {
                // Any replica resumes from the version in force here: it sends only what is newer.
                using var call = channel.Config.Watch(new WatchConfigRequest { KnownVersion = applier.Version }, cancellationToken: stoppingToken);
                // The control plane answers with headers at once: the stream stands, whether or not it has anything newer.
                await call.ResponseHeadersAsync;
                applier.Connected = true;
                applier.LastContact = time.GetUtcNow();
                channel.Succeeded();
                await foreach (var signed in call.ResponseStream.ReadAllAsync(stoppingToken))
                {
                    applier.LastContact = time.GetUtcNow();
                    applier.TryApply(signed.Cms.Span, SnapshotSource.Stream);
                    backoff.Reset();
                }
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                if (applier.Connected)
                {
                    LogStreamLost(logger, e is RpcException rpc ? rpc.Status.Detail : e.Message, applier.Version);
                }
            }
            applier.Connected = false;
            if (!channel.Failover(replica))
            {
                await backoff.DelayAsync(time, stoppingToken);
            }
        }
    }

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "config stream from the control plane lost ({Reason}); version {Version} stays in force, reconnecting")]
    private static partial void LogStreamLost(ILogger logger, string reason, long version);
}
