using Grpc.Core;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.Etcd;

namespace MeshGuard.ControlPlane.SharedState;

/// <summary>
/// The replica that does the work that must happen once (sweeping expired join tokens and the registrations of
/// sidecars gone for three SVID lifetimes, renewing the CA's intermediate when it is due), chosen through etcd:
/// whoever creates <c>/meshguard/leader</c> under its lease leads while it keeps the lease alive; when it stops
/// or loses etcd, the lease expires after <see cref="LeaseTtl"/> and another replica takes over.
/// </summary>
internal sealed partial class EtcdLeadership(
    EtcdConnection etcd, EtcdJoinTokens tokens, StoreKey storeKey, MeshGuard.ControlPlane.Ca.CertificateAuthority ca, ControlPlaneSettings settings,
    TimeProvider time, ILogger<EtcdLeadership> logger) : BackgroundService
{
    public static readonly TimeSpan LeaseTtl = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Tick = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(1);
    private readonly string _name = $"{Environment.MachineName}/{Environment.ProcessId} grpc {settings.BindAddress}:{settings.GrpcPort}";
    private long _lease;
    private DateTimeOffset _nextSweep;

    public bool IsLeader { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (IsLeader ? await KeepAsync(stoppingToken) : await TryTakeAsync(stoppingToken))
                {
                    await LeadAsync(stoppingToken);
                }
            }
            catch (Exception e) when (e is RpcException or IOException && !stoppingToken.IsCancellationRequested)
            {
                if (IsLeader)
                {
                    LogLost(logger, e.Message);
                }
                IsLeader = false;
                _lease = 0;
            }
            await Task.Delay(Tick, time, stoppingToken);
        }
    }

    private async Task<bool> TryTakeAsync(CancellationToken cancellation)
    {
        if (_lease == 0)
        {
            _lease = (await etcd.GrantLeaseAsync(LeaseTtl, cancellation)).ID;
        }
        else if ((await etcd.KeepAliveOnceAsync(_lease, cancellation)).TTL <= 0)
        {
            _lease = (await etcd.GrantLeaseAsync(LeaseTtl, cancellation)).ID;
        }
        IsLeader = (await etcd.TxnAsync(EtcdTxn.When(EtcdTxn.Absent(EtcdKeys.Leader), EtcdTxn.Put(EtcdKeys.Leader, _name, _lease)), cancellation)).Succeeded;
        if (IsLeader)
        {
            LogTaken(logger, _name, LeaseTtl.TotalSeconds);
        }
        return IsLeader;
    }

    private async Task<bool> KeepAsync(CancellationToken cancellation)
    {
        if ((await etcd.KeepAliveOnceAsync(_lease, cancellation)).TTL > 0)
        {
            return true;
        }
        LogLost(logger, "the lease expired");
        IsLeader = false;
        _lease = 0;
        return false;
    }

    private async Task LeadAsync(CancellationToken cancellation)
    {
        if (time.GetUtcNow() < _nextSweep)
        {
            return;
        }
        _nextSweep = time.GetUtcNow() + SweepInterval;
        var swept = await tokens.SweepExpiredAsync(cancellation);
        var gone = await EtcdEndpointRegistrar.SweepStaleAsync(etcd, settings.SvidTtl * 3, time, cancellation);
        if (swept + gone > 0)
        {
            LogSwept(logger, swept, gone);
        }
        if (await EtcdCertificateAuthority.RenewIntermediateIfDueAsync(etcd, storeKey, ca.TrustDomain, time, cancellation))
        {
            await EtcdCertificateAuthority.FollowAsync(etcd, storeKey, ca, cancellation);
            LogRenewed(logger, ca.Intermediate.NotAfter.ToUniversalTime());
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_lease != 0)
        {
            // Hand over at once rather than after the lease's TTL.
            try
            {
                await etcd.RevokeLeaseAsync(_lease, cancellationToken);
            }
            catch (Exception e) when (e is RpcException or IOException)
            {
                LogLost(logger, "could not revoke the lease: " + e.Message);
            }
        }
    }

    [LoggerMessage(EventId = 105, Level = LogLevel.Information, Message = "etcd: this replica ({Name}) leads, lease {Ttl}s")]
    private static partial void LogTaken(ILogger logger, string name, double ttl);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "etcd: leadership lost: {Reason}")]
    private static partial void LogLost(ILogger logger, string reason);

    [LoggerMessage(EventId = 108, Level = LogLevel.Warning, Message = "etcd: renewed the CA's intermediate (two thirds of its life had passed); the new one expires {NotAfter:o}")]
    private static partial void LogRenewed(ILogger logger, DateTime notAfter);

    [LoggerMessage(EventId = 107, Level = LogLevel.Information, Message = "etcd: swept {Tokens} expired join tokens and {Endpoints} endpoints not renewed in three SVID lifetimes")]
    private static partial void LogSwept(ILogger logger, int tokens, int endpoints);
}
