using System.Net;
using MeshGuard.Contracts.V1;
using MeshGuard.Proxy.Outbound.Resilience;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Outbound;

/// <summary>An inbound sidecar of a service: where to connect, who must answer there, and how it has been doing.</summary>
internal sealed class MeshEndpoint(string address, DnsEndPoint endPoint, SpiffeId identity, HttpMessageInvoker pool, PeerConnectionPool peer, EndpointCircuit circuit)
{
    public string Address { get; } = address;

    /// <summary>"http://host:port": the forwarder's destination prefix, computed once.</summary>
    public string DestinationPrefix { get; } = "http://" + address;

    public DnsEndPoint EndPoint { get; } = endPoint;

    public SpiffeId Identity { get; } = identity;

    public string IdentityText { get; } = identity.ToString();

    /// <summary>The HttpClient pool of this endpoint's identity, for the requests YARP forwards.</summary>
    public HttpMessageInvoker Pool { get; } = pool;

    /// <summary>The sidecar's own HTTP/2 connections to this endpoint, for every other request.</summary>
    public PeerConnectionPool Peer { get; } = peer;

    /// <summary>Passive health and tries in flight; kept across service tables while address and identity stay.</summary>
    public EndpointCircuit Circuit { get; } = circuit;
}

/// <summary>
/// A service and its endpoints. <see cref="Pick"/> balances by least requests with the power of two choices
/// (as Envoy's default and YARP's): two endpoints drawn at random, the one with fewer tries in flight wins;
/// endpoints whose circuit is open are skipped.
/// </summary>
internal sealed class ServiceRoute(string name, string ns, MeshEndpoint[] endpoints)
{
    public string Name { get; } = name;

    public string Namespace { get; } = ns;

    /// <summary>"name.namespace": resolves to this service from any namespace.</summary>
    public string QualifiedName { get; } = name + "." + ns;

    public MeshEndpoint[] Endpoints { get; } = endpoints;

    /// <summary>
    /// An endpoint to try, other than <paramref name="avoid"/> (the one that just failed) if another is
    /// available; null when every endpoint's circuit is open.
    /// </summary>
    public MeshEndpoint? Pick(MeshEndpoint? avoid = null)
    {
        var all = Endpoints;
        if (all.Length == 1)
        {
            return all[0].Circuit.IsOpen ? null : all[0];
        }
        var a = Random.Shared.Next(all.Length);
        var b = Random.Shared.Next(all.Length - 1);
        if (b >= a)
        {
            b++;
        }
        var first = all[a];
        var second = all[b];
        var firstUsable = first != avoid && !first.Circuit.IsOpen;
        var secondUsable = second != avoid && !second.Circuit.IsOpen;
        if (firstUsable && secondUsable)
        {
            return first.Circuit.InFlight <= second.Circuit.InFlight ? first : second;
        }
        if (firstUsable)
        {
            return first;
        }
        if (secondUsable)
        {
            return second;
        }
        for (var i = 1; i < all.Length; i++)
        {
            var candidate = all[(a + i) % all.Length];
            if (candidate != avoid && !candidate.Circuit.IsOpen)
            {
                return candidate;
            }
        }
        return avoid is not null && !avoid.Circuit.IsOpen ? avoid : null;
    }
}

/// <summary>
/// Host name to service, from the control plane's table. "name.namespace" always resolves; a bare "name"
/// resolves to the caller's own namespace first (as Kubernetes DNS does), else to the only namespace that
/// has it. The lookup table is rebuilt per table version and read without locks or allocation.
/// </summary>
internal sealed class ServiceDirectory(string ownNamespace, MeshConnectionPools pools, Func<EndpointCircuit> newCircuit)
{
    private sealed record Snapshot(long Version, Dictionary<string, ServiceRoute> Routes, Dictionary<IPAddress, ServiceRoute> ByAddress, int Services);

    private Snapshot _current = new(0, new Dictionary<string, ServiceRoute>(StringComparer.OrdinalIgnoreCase), [], 0);

    public long Version => Volatile.Read(ref _current).Version;

    /// <summary>Services with at least one usable endpoint (each reachable by several host names).</summary>
    public int ServiceCount => Volatile.Read(ref _current).Services;

    // An endpoint's circuit outlives a table version: a new table must not forgive an endpoint that keeps failing.
    private Dictionary<(string Address, SpiffeId Identity), MeshEndpoint> _known = [];

    /// <summary>Endpoints of every service in the current table.</summary>
    public int EndpointCount => Volatile.Read(ref _known).Count;

    /// <summary>Endpoints whose circuit has opened and not closed again (ejected, or waiting for their trial call).</summary>
    public int EjectedEndpoints
    {
        get
        {
            var ejected = 0;
            foreach (var endpoint in Volatile.Read(ref _known).Values)
            {
                ejected += endpoint.Circuit.IsEjected ? 1 : 0;
            }
            return ejected;
        }
    }

    public void Apply(ServiceTable table)
    {
        var known = new Dictionary<(string Address, SpiffeId Identity), MeshEndpoint>();
        var routes = new Dictionary<string, ServiceRoute>(StringComparer.OrdinalIgnoreCase);
        var bareNames = new Dictionary<string, List<ServiceRoute>>(StringComparer.OrdinalIgnoreCase);
        var byAddress = new Dictionary<IPAddress, ServiceRoute?>();
        foreach (var service in table.Services)
        {
            var endpoints = new List<MeshEndpoint>(service.Endpoints.Count);
            foreach (var endpoint in service.Endpoints)
            {
                // Secure naming, checked again here: an endpoint whose identity the platform did not bind to the service
                // is never dialled (its SVID is then checked at the handshake against the identity listed here).
                if (IPEndPoint.TryParse(endpoint.Address, out var ip) && service.AllowedIds.Contains(endpoint.SpiffeId)
                    && SpiffeId.TryParse(endpoint.SpiffeId, out var id, out _))
                {
                    var key = (endpoint.Address, id);
                    if (!_known.TryGetValue(key, out var meshEndpoint))
                    {
                        var dial = new DnsEndPoint(ip.Address.ToString(), ip.Port);
                        meshEndpoint = new MeshEndpoint(endpoint.Address, dial, id, pools.For(id), pools.ForPeer(id, dial), newCircuit());
                    }
                    known[key] = meshEndpoint;
                    endpoints.Add(meshEndpoint);
                }
            }
            if (endpoints.Count == 0)
            {
                continue;
            }
            var route = new ServiceRoute(service.Name, service.Namespace, [.. endpoints]);
            routes[route.QualifiedName] = route;
            foreach (var endpoint in endpoints)
            {
                var address = endpoint.EndPoint.Host is { } host && IPAddress.TryParse(host, out var ip) ? ip : null;
                if (address is null)
                {
                    continue;
                }
                // An address two services share (several sidecars on one host) says nothing about which was meant.
                if (byAddress.TryGetValue(address, out var other) && other is not null && other != route)
                {
                    byAddress[address] = null;
                }
                else if (!byAddress.ContainsKey(address))
                {
                    byAddress[address] = route;
                }
            }
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
        Volatile.Write(ref _known, known);
        var addresses = new Dictionary<IPAddress, ServiceRoute>();
        foreach (var (address, route) in byAddress)
        {
            if (route is not null)
            {
                addresses[address] = route;
            }
        }
        Volatile.Write(ref _current, new Snapshot(table.Version, routes, addresses, services));
    }

    /// <summary>
    /// The service with an endpoint at <paramref name="address"/> (a pod IP): where a transparently redirected
    /// connection was headed. Null for an address outside the mesh or shared by several services.
    /// </summary>
    public ServiceRoute? ResolveAddress(IPAddress address) =>
        Volatile.Read(ref _current).ByAddress.TryGetValue(address, out var route) ? route : null;

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
        var lookup = Volatile.Read(ref _current).Routes.GetAlternateLookup<ReadOnlySpan<char>>();
        return lookup.TryGetValue(host, out var route) ? route : null;
    }
}
