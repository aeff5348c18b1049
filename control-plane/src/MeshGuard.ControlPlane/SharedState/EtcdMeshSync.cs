using MeshGuard.ControlPlane.Distribution;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Etcd;

namespace MeshGuard.ControlPlane.SharedState;

/// <summary>
/// Turns each new etcd view into the mesh config: the policy store reads the view's documents, the registry
/// takes its endpoints, the revocation and binding stores their lists, and the distributor publishes them as version = the
/// store's base plus the view's etcd revision (<see cref="EtcdVersionBase"/>). So a version means the same
/// content on every replica, and a sidecar that moves to another replica resumes at its version there.
/// </summary>
internal sealed partial class EtcdMeshSync(
    EtcdMeshState state, EtcdPolicySource policySource, PolicyStore policies, ServiceRegistry registry, RevocationStore revocations,
    ServiceBindingStore bindings, ConfigDistributor distributor, EtcdVersionBase versions, ILogger<EtcdMeshSync> logger) : SyncedWatchService
{
    private string? _revocationText;
    private string? _bindingsText;

    public override string Description => "the mesh config from " + state.Description;

    protected override async Task WatchAsync(CancellationToken cancellation)
    {
        await state.Synced.WaitAsync(cancellation);
        long applied = -1;
        while (!cancellation.IsCancellationRequested)
        {
            var changed = state.Changed;
            var view = state.Current;
            if (view.Revision != applied)
            {
                Apply(view);
                applied = view.Revision;
                MarkSynced();
            }
            await changed.WaitAsync(cancellation);
        }
    }

    private void Apply(EtcdView view)
    {
        policySource.Pin(view);
        policies.Reload();
        registry.Replace(EtcdEndpointRegistrar.Endpoints(view));
        var bindingsText = view.Keys.GetValueOrDefault(EtcdKeys.ServiceBindings, "");
        if (bindingsText != _bindingsText)
        {
            _bindingsText = bindingsText;
            bindings.Offer(bindingsText, "etcd " + EtcdKeys.ServiceBindings);
        }
        var text = view.Keys.GetValueOrDefault(EtcdKeys.Revocations, "");
        if (text != _revocationText)
        {
            _revocationText = text;
            revocations.Offer(text, "etcd " + EtcdKeys.Revocations);
        }
        if (distributor.PublishAt(versions.VersionAt(view.Revision)))
        {
            LogApplied(logger, view.Revision);
        }
    }

    [LoggerMessage(EventId = 104, Level = LogLevel.Debug, Message = "mesh config from etcd revision {Revision}")]
    private static partial void LogApplied(ILogger logger, long revision);
}
