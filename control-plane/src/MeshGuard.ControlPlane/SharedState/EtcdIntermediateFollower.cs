using Grpc.Core;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.Etcd;

namespace MeshGuard.ControlPlane.SharedState;

/// <summary>
/// Every replica signs with the intermediate etcd holds: looked at every 30 s (the leader renews it with a third
/// of its life, months, still to go, so a replica that is late costs nothing). SVIDs issued by the old one stay
/// valid: the bundle holds only the root.
/// </summary>
internal sealed partial class EtcdIntermediateFollower(
    EtcdConnection etcd, StoreKey storeKey, CertificateAuthority ca, TimeProvider time, ILogger<EtcdIntermediateFollower> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            await Task.Delay(Interval, time, stoppingToken);
            try
            {
                if (await EtcdCertificateAuthority.FollowAsync(etcd, storeKey, ca, stoppingToken))
                {
                    LogSwitched(logger, ca.Intermediate.Thumbprint, ca.Intermediate.NotAfter.ToUniversalTime());
                }
            }
            catch (Exception e) when (e is RpcException or IOException or InvalidOperationException && !stoppingToken.IsCancellationRequested)
            {
                LogFailed(logger, e.Message);
            }
        }
    }

    [LoggerMessage(EventId = 109, Level = LogLevel.Information, Message = "signing with the intermediate {Thumbprint} from etcd, expires {NotAfter:o}")]
    private static partial void LogSwitched(ILogger logger, string thumbprint, DateTime notAfter);

    [LoggerMessage(EventId = 110, Level = LogLevel.Warning, Message = "could not read the CA from etcd: {Reason}; signing on with the intermediate in use")]
    private static partial void LogFailed(ILogger logger, string reason);
}
