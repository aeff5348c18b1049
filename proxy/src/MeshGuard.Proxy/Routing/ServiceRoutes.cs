using System.Net;

namespace MeshGuard.Proxy.Routing;

/// <summary>
/// Host name and pod address to service, for one service table: immutable, read without locks or allocation.
/// "name.namespace" always resolves; a bare "name" resolves to the caller's own namespace first (as Kubernetes
/// DNS does), else to the only namespace that has it. Built by <see cref="RouteCompiler"/>.
/// </summary>
internal sealed class ServiceRoutes
{
    /// <summary>No table yet: nothing resolves.</summary>
    public static readonly ServiceRoutes Empty = new(0, new Dictionary<string, ServiceRoute>(StringComparer.OrdinalIgnoreCase), [], [], 0);

    private readonly Dictionary<string, ServiceRoute> _byName;
    private readonly Dictionary<IPAddress, ServiceRoute> _byAddress;

    internal ServiceRoutes(long version, Dictionary<string, ServiceRoute> byName, Dictionary<IPAddress, ServiceRoute> byAddress, MeshEndpoint[] endpoints, int services)
    {
        Version = version;
        _byName = byName;
        _byAddress = byAddress;
        Endpoints = endpoints;
        Services = services;
    }

    /// <summary>The service table's version.</summary>
    public long Version { get; }

    /// <summary>Services with at least one usable endpoint (each reachable by several host names).</summary>
    public int Services { get; }

    /// <summary>Endpoints of every service in the table.</summary>
    public IReadOnlyList<MeshEndpoint> Endpoints { get; }

    /// <summary>Endpoints whose circuit has opened and not closed again (ejected, or waiting for their trial call).</summary>
    public int EjectedEndpoints
    {
        get
        {
            var ejected = 0;
            foreach (var endpoint in Endpoints)
            {
                ejected += endpoint.Circuit.IsEjected ? 1 : 0;
            }
            return ejected;
        }
    }

    /// <summary>
    /// The service with an endpoint at <paramref name="address"/> (a pod IP): where a transparently redirected
    /// connection was headed. Null for an address outside the mesh or shared by several services.
    /// </summary>
    public ServiceRoute? ResolveAddress(IPAddress address) => _byAddress.TryGetValue(address, out var route) ? route : null;

    /// <summary>Finds the service for a Host value ("orders", "orders.shop", "orders.shop.svc.cluster.local", with or without ":port").</summary>
    public ServiceRoute? Resolve(ReadOnlySpan<char> host)
    {
        var colon = host.LastIndexOf(':');
        if (colon >= 0 && host.IndexOf(']') < 0)
        {
            host = host[..colon];
        }
        // Kubernetes DNS names: "orders.shop.svc" and "orders.shop.svc.cluster.local" are "orders.shop".
        var svc = host.IndexOf(".svc", StringComparison.OrdinalIgnoreCase);
        if (svc > 0 && (svc + 4 == host.Length || host[svc + 4] == '.'))
        {
            host = host[..svc];
        }
        var lookup = _byName.GetAlternateLookup<ReadOnlySpan<char>>();
        return lookup.TryGetValue(host, out var route) ? route : null;
    }
}
