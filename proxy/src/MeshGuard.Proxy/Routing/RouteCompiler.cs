using System.Net;
using MeshGuard.Contracts.V1;
using MeshGuard.Proxy.Outbound.Resilience;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Routing;

/// <summary>
/// Turns the control plane's service table into <see cref="ServiceRoutes"/>. Only endpoints whose identity the
/// platform bound to their service are kept; an endpoint's connection pools and circuit carry over from one table
/// to the next while its address and identity stay.
/// </summary>
internal sealed class RouteCompiler(string ownNamespace, MeshConnectionPools pools, Func<EndpointCircuit> newCircuit)
{
    // An endpoint's circuit outlives a table version: a new table must not forgive an endpoint that keeps failing.
    private Dictionary<(string Address, SpiffeId Identity), MeshEndpoint> _known = [];

    /// <summary>
    /// The routes of <paramref name="table"/>. Not thread-safe: the one snapshot applier calls it, then publishes
    /// the result inside the sidecar's config.
    /// </summary>
    public ServiceRoutes Compile(ServiceTable table)
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
        _known = known;
        var addresses = new Dictionary<IPAddress, ServiceRoute>();
        foreach (var (address, route) in byAddress)
        {
            if (route is not null)
            {
                addresses[address] = route;
            }
        }
        return new ServiceRoutes(table.Version, routes, addresses, [.. known.Values], services);
    }
}
