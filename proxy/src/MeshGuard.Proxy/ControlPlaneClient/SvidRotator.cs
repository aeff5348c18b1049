using MeshGuard.Proxy.Identity;

namespace MeshGuard.Proxy.ControlPlaneClient;

/// <summary>
/// Renews the SVID at about 70% of its life (65-75%, jittered so a fleet started together does not renew
/// together), as linkerd2-proxy does. On failure it retries with backoff until the SVID expires; the old
/// SVID keeps serving meanwhile. Connections made with an older SVID are never dropped.
/// </summary>
internal sealed partial class SvidRotator(
    ICredentialSource credentials, IdentityClient client, ControlPlaneChannel channel, TimeProvider time, ILogger<SvidRotator> logger)
    : BackgroundService
{
    private static readonly TimeSpan MinRetry = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan MaxRetry = TimeSpan.FromSeconds(10);

    /// <summary>When to renew an SVID received at <paramref name="receivedAt"/>: a fraction in [0.65, 0.75) of what was left of its life.</summary>
    public static DateTimeOffset RenewalTime(DateTimeOffset receivedAt, DateTimeOffset notAfter, double jitter)
    {
        var remaining = notAfter - receivedAt;
        if (remaining <= TimeSpan.Zero)
        {
            return receivedAt;
        }
        return receivedAt + (remaining * (0.65 + (0.1 * Math.Clamp(jitter, 0, 1))));
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var current = credentials.Current;
            var renewAt = RenewalTime(current.ReceivedAt, current.Svid.NotAfter, Random.Shared.NextDouble());
            var wait = renewAt - time.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, time, stoppingToken);
            }
            var backoff = new Backoff(MinRetry, MaxRetry);
            while (!stoppingToken.IsCancellationRequested)
            {
                var replica = channel.CurrentIndex;
                try
                {
                    var svid = await client.RenewAsync(channel.Identity, stoppingToken);
                    channel.Succeeded();
                    LogRenewed(logger, svid.Id, svid.Certificate.SerialNumber, svid.NotAfter, channel.CurrentAddress);
                    break;
                }
                catch (Exception e) when (!stoppingToken.IsCancellationRequested)
                {
                    var left = current.Svid.NotAfter - time.GetUtcNow();
                    LogRenewalFailed(logger, e.Message, left.TotalSeconds);
                    if (channel.Failover(replica))
                    {
                        continue;
                    }
                    // The backoff never sleeps past a quarter of the life left: a control plane that returns just
                    // before expiry must still be asked in time.
                    await backoff.DelayAsync(time, left / 4, stoppingToken);
                }
            }
        }
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "renewed SVID {SpiffeId}, serial {Serial}, valid until {NotAfter:o}, at {ControlPlane}")]
    private static partial void LogRenewed(ILogger logger, MeshGuard.Spiffe.SpiffeId spiffeId, string serial, DateTimeOffset notAfter, Uri controlPlane);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "SVID renewal failed ({Reason}); current SVID has {SecondsLeft:F1}s left, retrying")]
    private static partial void LogRenewalFailed(ILogger logger, string reason, double secondsLeft);
}
