using Google.Protobuf;
using Grpc.Core;
using MeshGuard.Contracts.Snapshots;
using MeshGuard.Contracts.V1;
using MeshGuard.ControlPlane.Attestation;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.State;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;

namespace MeshGuard.ControlPlane.Distribution;

/// <summary>
/// The signed snapshot stream on the mTLS port. Each sidecar gets only what it needs (the policies that
/// select its workload, the services, the bundle), signed by the control plane's SVID. A reconnecting
/// sidecar names the version it has and gets nothing older or equal.
/// </summary>
internal sealed partial class ConfigService(
    ConfigDistributor distributor, ControlPlaneCredentials credentials, SnapshotBuilder snapshots, MeshGuard.ControlPlane.Sources.RevocationStore revocations,
    IHostApplicationLifetime lifetime, WorkloadStatus status, ILogger<ConfigService> logger)
    : Config.ConfigBase
{
    public override async Task Watch(WatchConfigRequest request, IServerStreamWriter<SignedSnapshot> responseStream, ServerCallContext context)
    {
        var peer = PeerIdentity.Require(context);
        var ns = peer.GetPathValue("ns");
        var sa = peer.GetPathValue("sa");
        if (ns is null || sa is null)
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"{peer} is not a workload identity (spiffe://td/ns/NS/sa/SA)"));
        }
        if (revocations.IsRevoked(peer))
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"{peer} is revoked"));
        }
        var known = request.KnownVersion;
        // The stream ends when the caller goes or this control plane stops: a stopping control plane must
        // not wait for streams that never end, and sidecars notice at once that they are on their own.
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        var cancellation = linked.Token;
        // Headers at once: the sidecar knows its stream stands even when it already has everything (it may come
        // from another replica with the same snapshot), rather than waiting for the next change to say so.
        await context.WriteResponseHeadersAsync([]);
        status.StreamOpened(peer);
        try
        {
            await StreamAsync(peer, ns, sa, known, responseStream, cancellation);
        }
        finally
        {
            status.StreamClosed(peer);
        }
    }

    private async Task StreamAsync(MeshGuard.Spiffe.SpiffeId peer, string ns, string sa, long known, IServerStreamWriter<SignedSnapshot> responseStream, CancellationToken cancellation)
    {
        while (!cancellation.IsCancellationRequested)
        {
            // Take the change signal before the config so that no change slips between the two reads.
            var changed = distributor.Changed;
            var config = distributor.Current;
            if (config.Version > known)
            {
                var content = snapshots.Build(config, peer.ToString(), ns, sa);
                await responseStream.WriteAsync(new SignedSnapshot { Cms = UnsafeByteOperations.UnsafeWrap(SnapshotSignature.SignContent(content, credentials.Svid)) }, cancellation);
                LogSent(logger, config.Version, peer.ToString());
                status.Sent(peer, config.Version);
                known = config.Version;
            }
            try
            {
                await changed.WaitAsync(cancellation);
            }
            catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested)
            {
                return;
            }
        }
    }

    [LoggerMessage(EventId = 51, Level = LogLevel.Debug, Message = "sent config version {Version} to {SpiffeId}")]
    private static partial void LogSent(ILogger logger, long version, string spiffeId);
}
