using MeshGuard.Contracts.V1;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.ControlPlane.State;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Distribution;

/// <summary>
/// Joins what sidecars need (policies in force, the service table) into one versioned mesh config and
/// wakes the snapshot streams when it changes. Versions only grow, across restarts too: a new version is
/// never below the current time in milliseconds. With the etcd store the version is instead the store's base
/// plus the etcd revision the config was read at (<see cref="PublishAt"/>), the same on every replica.
/// </summary>
internal sealed partial class ConfigDistributor(
    PolicyStore policies, ServiceRegistry registry, RevocationStore revocations, ServiceBindingStore bindings, ControlPlaneSettings settings, TimeProvider time,
    ILogger<ConfigDistributor> logger)
    : BackgroundService
{
    private readonly Lock _gate = new();
    private MeshConfig? _current;
    private readonly ChangeSignal _changed = new();

    public MeshConfig Current
    {
        get
        {
            var current = Volatile.Read(ref _current);
            return current ?? Publish(policies.Current, registry.Current, revocations.Current, storeRevision: null);
        }
    }

    public Task Changed => _changed.Next;

    /// <summary>Publishes what is in force as <paramref name="version"/> (an etcd revision), unless it is what is published already.</summary>
    public bool PublishAt(long version)
    {
        var current = Volatile.Read(ref _current);
        if (current is not null && (version <= current.Version || Same(current)))
        {
            return false;
        }
        Publish(policies.Current, registry.Current, revocations.Current, storeRevision: version);
        return true;
    }

    private bool Same(MeshConfig config) =>
        ReferenceEquals(config.Policies.Set, policies.Current.Set) && config.RegistryTable == registry.Current && ReferenceEquals(config.Revoked, revocations.Current)
        && ReferenceEquals(config.Bindings, bindings.Current);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // With the etcd store, EtcdMeshSync publishes each revision it applied.
        while (settings.Store is null && !stoppingToken.IsCancellationRequested)
        {
            var policyChange = policies.Changed;
            var registryChange = registry.Changed;
            var revocationChange = revocations.Changed;
            var bindingChange = bindings.Changed;
            if (!Same(Current))
            {
                Publish(policies.Current, registry.Current, revocations.Current, storeRevision: null);
                continue;
            }
            await Task.WhenAny(policyChange, registryChange, revocationChange, bindingChange).WaitAsync(stoppingToken);
        }
    }

    private MeshConfig Publish(PolicySnapshot policySnapshot, ServiceTable registryTable, RevocationList revoked, long? storeRevision)
    {
        MeshConfig config;
        lock (_gate)
        {
            var previous = _current?.Version ?? 0;
            var version = storeRevision ?? Math.Max(previous + 1, time.GetUtcNow().ToUnixTimeMilliseconds());
            var naming = bindings.Current;
            config = new MeshConfig(version, policySnapshot, registryTable, Serving(registryTable, revoked, naming, settings.TrustDomain), revoked, naming, time.GetUtcNow());
            _current = config;
        }
        _changed.Fire();
        LogPublished(logger, config.Version, policySnapshot.Version, registryTable.Version);
        return config;
    }

    /// <summary>
    /// What callers are sent: the registry's table less the endpoints of revoked identities and of identities secure
    /// naming does not let serve the service (whatever source the table came from: registrations or a cluster's
    /// pods), each service with the identities allowed to serve it, which callers' sidecars check again.
    /// </summary>
    private static ServiceTable Serving(ServiceTable table, RevocationList revoked, ServiceBindings naming, string trustDomain)
    {
        var filtered = new ServiceTable { Version = table.Version };
        foreach (var service in table.Services)
        {
            var kept = new Service { Name = service.Name, Namespace = service.Namespace };
            kept.AllowedIds.AddRange(naming.AllowedFor(service.Name, service.Namespace, trustDomain));
            foreach (var endpoint in service.Endpoints)
            {
                if (SpiffeId.TryParse(endpoint.SpiffeId, out var id, out _) && !revoked.Contains(id) && naming.MayServe(service.Name, service.Namespace, id))
                {
                    kept.Endpoints.Add(endpoint);
                }
            }
            if (kept.Endpoints.Count > 0)
            {
                filtered.Services.Add(kept);
            }
        }
        return filtered;
    }

    [LoggerMessage(EventId = 50, Level = LogLevel.Information, Message = "mesh config version {Version} (policies {PolicyVersion}, services {ServiceVersion})")]
    private static partial void LogPublished(ILogger logger, long version, long policyVersion, long serviceVersion);
}

/// <summary>One version of everything sidecars are sent; <see cref="RegistryTable"/> is the registry's table it was made from.</summary>
internal sealed record MeshConfig(long Version, PolicySnapshot Policies, ServiceTable RegistryTable, ServiceTable Services, RevocationList Revoked, ServiceBindings Bindings, DateTimeOffset IssuedAt);
