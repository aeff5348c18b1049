using System.Net;
using MeshGuard.Contracts.V1;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Outbound;

/// <summary>An inbound sidecar of a service: where to connect and who must answer there.</summary>
internal sealed class MeshEndpoint(string address, DnsEndPoint endPoint, SpiffeId identity, HttpMessageInvoker pool)
{
    public string Address { get; } = address;

    /// <summary>"http://host:port": the forwarder's destination prefix, computed once.</summary>
    public string DestinationPrefix { get; } = "http://" + address;

    public DnsEndPoint EndPoint { get; } = endPoint;

    public SpiffeId Identity { get; } = identity;

    public string IdentityText { get; } = identity.ToString();

    /// <summary>The connection pool of this endpoint's identity.</summary>
    public HttpMessageInvoker Pool { get; } = pool;
}

/// <summary>A service and its endpoints, with a round-robin cursor.</summary>
internal sealed class ServiceRoute(string name, string ns, MeshEndpoint[] endpoints)
{
    private uint _next;

    public string Name { get; } = name;

    public string Namespace { get; } = ns;

    public MeshEndpoint[] Endpoints { get; } = endpoints;

    public MeshEndpoint Pick() => Endpoints[(int)(Interlocked.Increment(ref _next) % (uint)Endpoints.Length)];
}

/// <summary>
/// Host name to service, from the control plane's table. "name.namespace" always resolves; a bare "name"
/// resolves to the caller's own namespace first (as Kubernetes DNS does), else to the only namespace that
/// has it. The lookup table is rebuilt per table version and read without locks or allocation.
/// </summary>
internal sealed class ServiceDirectory(string ownNamespace, MeshConnectionPools pools)
{
    private sealed record Snapshot(long Version, Dictionary<string, ServiceRoute> Routes, int Services);

    private Snapshot _current = new(0, new Dictionary<string, ServiceRoute>(StringComparer.OrdinalIgnoreCase), 0);

    public long Version => Volatile.Read(ref _current).Version;

    /// <summary>Services with at least one usable endpoint (each reachable by several host names).</summary>
    public int ServiceCount => Volatile.Read(ref _current).Services;

    public void Apply(ServiceTable table)
    {
        var routes = new Dictionary<string, ServiceRoute>(StringComparer.OrdinalIgnoreCase);
        var bareNames = new Dictionary<string, List<ServiceRoute>>(StringComparer.OrdinalIgnoreCase);
        foreach (var service in table.Services)
        {
            var endpoints = new List<MeshEndpoint>(service.Endpoints.Count);
            foreach (var endpoint in service.Endpoints)
            {
                if (IPEndPoint.TryParse(endpoint.Address, out var ip) && SpiffeId.TryParse(endpoint.SpiffeId, out var id, out _))
                {
                    endpoints.Add(new MeshEndpoint(endpoint.Address, new DnsEndPoint(ip.Address.ToString(), ip.Port), id, pools.For(id)));
                }
            }
            if (endpoints.Count == 0)
            {
                continue;
            }
            var route = new ServiceRoute(service.Name, service.Namespace, [.. endpoints]);
            routes[service.Name + "." + service.Namespace] = route;
            if (!bareNames.TryGetValue(service.Name, out var sameName))
            {
                sameName = [];
                bareNames[service.Name] = sameName;
            }
            sameName.Add(route);
        }
        foreach (var (name, candidates) in bareNames)
        {
            var own = candidates.Find(r => r.Namespace == ownNamespace);
            if (own is not null)
            {
                routes[name] = own;
            }
            else if (candidates.Count == 1)
            {
                routes[name] = candidates[0];
            }
        }
        var services = 0;
        foreach (var sameName in bareNames.Values)
        {
            services += sameName.Count;
        }
        Volatile.Write(ref _current, new Snapshot(table.Version, routes, services));
    }

    /// <summary>Finds the service for a Host value ("orders", "orders.shop", with or without ":port").</summary>
    public ServiceRoute? Resolve(ReadOnlySpan<char> host)
    {
        var colon = host.LastIndexOf(':');
        if (colon >= 0 && host.IndexOf(']') < 0)
        {
            host = host[..colon];
        }
        var lookup = Volatile.Read(ref _current).Routes.GetAlternateLookup<ReadOnlySpan<char>>();
        return lookup.TryGetValue(host, out var route) ? route : null;
    }
}
