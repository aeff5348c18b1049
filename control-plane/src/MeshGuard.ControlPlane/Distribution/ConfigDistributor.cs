using MeshGuard.Contracts.V1;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.Store;

namespace MeshGuard.ControlPlane.Distribution;

/// <summary>
/// Joins what sidecars need (policies in force, the service table) into one versioned mesh config and
/// wakes the snapshot streams when it changes. Versions only grow, across restarts too: a new version is
/// never below the current time in milliseconds.
/// </summary>
internal sealed partial class ConfigDistributor(PolicyStore policies, ServiceRegistry registry, TimeProvider time, ILogger<ConfigDistributor> logger)
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
            return current ?? Publish(policies.Current, registry.Current);
        }
    }

    public Task Changed => _changed.Next;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var policyChange = policies.Changed;
            var registryChange = registry.Changed;
            var current = Current;
            if (!ReferenceEquals(current.Policies.Set, policies.Current.Set) || current.Services != registry.Current)
            {
                Publish(policies.Current, registry.Current);
                continue;
            }
            await Task.WhenAny(policyChange, registryChange).WaitAsync(stoppingToken);
        }
    }

    private MeshConfig Publish(PolicySnapshot policySnapshot, ServiceTable services)
    {
        MeshConfig config;
        lock (_gate)
        {
            var previous = _current?.Version ?? 0;
            var version = Math.Max(previous + 1, time.GetUtcNow().ToUnixTimeMilliseconds());
            config = new MeshConfig(version, policySnapshot, services, time.GetUtcNow());
            _current = config;
        }
        _changed.Fire();
        LogPublished(logger, config.Version, policySnapshot.Version, services.Version);
        return config;
    }

    [LoggerMessage(EventId = 50, Level = LogLevel.Information, Message = "mesh config version {Version} (policies {PolicyVersion}, services {ServiceVersion})")]
    private static partial void LogPublished(ILogger logger, long version, long policyVersion, long serviceVersion);
}

/// <summary>One version of everything sidecars are sent.</summary>
internal sealed record MeshConfig(long Version, PolicySnapshot Policies, ServiceTable Services, DateTimeOffset IssuedAt);
