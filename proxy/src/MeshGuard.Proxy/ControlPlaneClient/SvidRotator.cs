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
            var toldExpired = false;
            while (!stoppingToken.IsCancellationRequested)
            {
                var replica = channel.CurrentIndex;
                var left = current.Svid.NotAfter - time.GetUtcNow();
                try
                {
                    if (left > TimeSpan.Zero)
                    {
                        var svid = await client.RenewAsync(channel.Identity, stoppingToken);
                        channel.Succeeded();
                        LogRenewed(logger, svid.Id, svid.Certificate.SerialNumber, svid.NotAfter, channel.CurrentAddress);
                        break;
                    }
                    // An expired SVID authenticates no renewal: the control plane was unreachable for its last quarter of life.
                    if (client.CanAttestAgain)
                    {
                        var svid = await client.AttestAgainAsync(stoppingToken);
                        LogAttestedAgain(logger, svid.Id, svid.Certificate.SerialNumber, svid.NotAfter);
                        break;
                    }
                    if (!toldExpired)
                    {
                        toldExpired = true;
                        LogExpiredForGood(logger, current.Svid.Id, current.Svid.NotAfter);
                    }
                    await Task.Delay(MaxRetry, time, stoppingToken);
                    continue;
                }
                catch (Exception e) when (!stoppingToken.IsCancellationRequested)
                {
                    // Read again: the failed call may have taken up to its 15 s deadline.
                    left = current.Svid.NotAfter - time.GetUtcNow();
                    LogRenewalFailed(logger, e.Message, left.TotalSeconds);
                    if (channel.Failover(replica))
                    {
                        continue;
                    }
                    // The backoff never sleeps past a quarter of the life left, so that a control plane that returns just
                    // before expiry is still asked in time; once the SVID has expired it backs off in full.
                    await backoff.DelayAsync(time, left > TimeSpan.Zero ? left / 4 : MaxRetry, stoppingToken);
                }
            }
        }
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "renewed SVID {SpiffeId}, serial {Serial}, valid until {NotAfter:o}, at {ControlPlane}")]
    private static partial void LogRenewed(ILogger logger, MeshGuard.Spiffe.SpiffeId spiffeId, string serial, DateTimeOffset notAfter, Uri controlPlane);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "SVID renewal failed ({Reason}); current SVID has {SecondsLeft:F1}s left, retrying")]
    private static partial void LogRenewalFailed(ILogger logger, string reason, double secondsLeft);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "SVID had expired; attested again with the service-account token: {SpiffeId}, serial {Serial}, valid until {NotAfter:o}")]
    private static partial void LogAttestedAgain(ILogger logger, MeshGuard.Spiffe.SpiffeId spiffeId, string serial, DateTimeOffset notAfter);

    [LoggerMessage(EventId = 103, Level = LogLevel.Error, Message = "SVID {SpiffeId} expired at {NotAfter:o} before the control plane could renew it, and a join token attests only once: restart the sidecar with a new join token, or give it --sa-token-file to attest again by itself")]
    private static partial void LogExpiredForGood(ILogger logger, MeshGuard.Spiffe.SpiffeId spiffeId, DateTimeOffset notAfter);
}
