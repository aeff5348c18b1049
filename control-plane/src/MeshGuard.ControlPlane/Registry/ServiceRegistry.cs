using Google.Protobuf;
using MeshGuard.Contracts;
using MeshGuard.Contracts.V1;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.ControlPlane.State;
using MeshGuard.Spiffe;
using Endpoint = MeshGuard.Contracts.V1.Endpoint;

namespace MeshGuard.ControlPlane.Registry;

/// <summary>
/// Which sidecar serves which service at which address: as sidecars registered at attestation, or in a
/// cluster as the pods show it (<see cref="KubernetesEndpointSource"/> replaces the whole table, and
/// registrations are then ignored). Readers get an immutable table with a version; a change publishes a new
/// table and wakes the watchers. The table is kept in the data directory, so a restarted control plane still
/// knows the mesh and never sends sidecars an empty one.
/// </summary>
internal sealed class ServiceRegistry : IEndpointRegistrar
{
    private readonly Lock _gate = new();
    private readonly string? _file;
    // (service name, namespace) -> (address -> identity)
    private readonly Dictionary<(string Name, string Namespace), Dictionary<string, SpiffeId>> _services = [];
    private ServiceTable _table = new() { Version = 0 };
    private readonly ChangeSignal _changed = new();

    // address -> the identity registered there and when it last registered (a restart counts as seen now)
    private readonly Dictionary<string, (SpiffeId Owner, DateTimeOffset SeenAt)> _holders = new(StringComparer.Ordinal);
    private readonly bool _acceptsRegistrations;
    private readonly SecureNaming? _naming;
    private readonly TimeProvider _time;

    /// <param name="naming">The rule every registration must pass; null only for a table fed whole by another source.</param>
    public ServiceRegistry(DataDirectory? data = null, bool acceptsRegistrations = true, SecureNaming? naming = null, TimeProvider? time = null)
    {
        _acceptsRegistrations = acceptsRegistrations;
        _naming = naming;
        _time = time ?? TimeProvider.System;
        if (data is null)
        {
            return;
        }
        _file = Path.Combine(data.StateDirectory, "registry.json");
        if (!File.Exists(_file))
        {
            return;
        }
        var stored = JsonParser.Default.Parse<ServiceTable>(File.ReadAllText(_file));
        foreach (var service in stored.Services)
        {
            var entries = new Dictionary<string, SpiffeId>(StringComparer.Ordinal);
            foreach (var endpoint in service.Endpoints)
            {
                if (SpiffeId.TryParse(endpoint.SpiffeId, out var id, out _))
                {
                    entries[endpoint.Address] = id;
                    _holders[endpoint.Address] = (id, _time.GetUtcNow());
                }
            }
            _services[(service.Name, service.Namespace)] = entries;
        }
        _table = BuildTable(stored.Version);
    }

    public ServiceTable Current => Volatile.Read(ref _table);

    /// <summary>A task that completes on the next change after this call.</summary>
    public Task Changed => _changed.Next;

    public string? Check(string service, SpiffeId id, string address)
    {
        lock (_gate)
        {
            return CheckLocked(service, id, address);
        }
    }

    private string? CheckLocked(string service, SpiffeId id, string address) =>
        _naming?.Check(service, id, address, _holders.TryGetValue(address, out var holder) ? holder : null);

    public Task<string?> RegisterAsync(string service, SpiffeId id, string address, CancellationToken cancellation) =>
        Task.FromResult(Register(service, id, address));

    /// <summary>Records the claim unless secure naming refuses it; returns the refusal, or null.</summary>
    public string? Register(string service, SpiffeId id, string address)
    {
        if (!_acceptsRegistrations)
        {
            return null;
        }
        var ns = id.GetPathValue("ns") ?? "default";
        lock (_gate)
        {
            // Secure naming: only an identity the platform lets serve the service, and never at an address another
            // identity still holds (checked again here, under the lock, whatever was checked before).
            if (CheckLocked(service, id, address) is { } refusal)
            {
                return refusal;
            }
            // The address leaves whichever service its earlier (lapsed) holder had it under.
            if (_holders.TryGetValue(address, out var previous) && previous.Owner != id)
            {
                foreach (var other in _services.Values)
                {
                    other.Remove(address);
                }
            }
            _holders[address] = (id, _time.GetUtcNow());
            var key = (service, ns);
            if (!_services.TryGetValue(key, out var entries))
            {
                entries = [];
                _services[key] = entries;
            }
            if (entries.TryGetValue(address, out var existing) && existing == id)
            {
                return null;
            }
            entries[address] = id;
            PublishLocked();
        }
        _changed.Fire();
        return null;
    }

    /// <summary>The whole table from a source that knows it (a cluster's pods); a new version only when it differs.</summary>
    public void Replace(IReadOnlyList<PodEndpoint> endpoints)
    {
        var services = new Dictionary<(string Name, string Namespace), Dictionary<string, SpiffeId>>();
        foreach (var endpoint in endpoints)
        {
            var key = (endpoint.Service, endpoint.Namespace);
            if (!services.TryGetValue(key, out var entries))
            {
                entries = new Dictionary<string, SpiffeId>(StringComparer.Ordinal);
                services[key] = entries;
            }
            entries[endpoint.Address] = endpoint.Identity;
        }
        lock (_gate)
        {
            if (Same(services, _services))
            {
                return;
            }
            _services.Clear();
            foreach (var (key, entries) in services)
            {
                _services[key] = entries;
            }
            PublishLocked();
        }
        _changed.Fire();
    }

    private static bool Same(
        Dictionary<(string Name, string Namespace), Dictionary<string, SpiffeId>> a, Dictionary<(string Name, string Namespace), Dictionary<string, SpiffeId>> b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }
        foreach (var (key, entries) in a)
        {
            if (!b.TryGetValue(key, out var other) || other.Count != entries.Count)
            {
                return false;
            }
            foreach (var (address, id) in entries)
            {
                if (!other.TryGetValue(address, out var otherId) || otherId != id)
                {
                    return false;
                }
            }
        }
        return true;
    }

    private void PublishLocked()
    {
        _table = BuildTable(_table.Version + 1);
        if (_file is not null)
        {
            SecureFile.WriteAtomically(_file, JsonFormatter.Default.Format(_table), secret: false);
        }
    }

    private ServiceTable BuildTable(long version)
    {
        var table = new ServiceTable { Version = version };
        foreach (var ((name, ns), endpoints) in _services)
        {
            if (endpoints.Count == 0)
            {
                continue;
            }
            var service = new Service { Name = name, Namespace = ns };
            foreach (var (address, id) in endpoints)
            {
                service.Endpoints.Add(new Endpoint { Address = address, SpiffeId = id.ToString() });
            }
            table.Services.Add(service);
        }
        return table;
    }
}
