using MeshGuard.ControlPlane.Registry;
using MeshGuard.Spiffe;
using MeshGuard.Store;

namespace MeshGuard.ControlPlane.Store.Etcd;

/// <summary>
/// Registrations in etcd (<c>/meshguard/registrations/NS/SERVICE/ADDRESS</c> = SPIFFE ID), so every replica's
/// service table holds every sidecar, whichever replica it attested at. A registration etcd already holds
/// (a renewal, mostly) writes nothing.
/// </summary>
internal sealed class EtcdEndpointRegistrar(EtcdConnection etcd, EtcdMeshState state) : IEndpointRegistrar
{
    public async Task RegisterAsync(string service, SpiffeId id, string address, CancellationToken cancellation)
    {
        var key = EtcdKeys.Registration(id.GetPathValue("ns") ?? "default", service, address);
        var value = id.ToString();
        if (state.Current.Keys.TryGetValue(key, out var known) && known == value)
        {
            return;
        }
        await etcd.PutAsync(key, value, cancellation);
    }

    /// <summary>The endpoints a view holds; keys that do not parse are skipped (only replicas write them).</summary>
    public static List<PodEndpoint> Endpoints(EtcdView view)
    {
        var endpoints = new List<PodEndpoint>();
        foreach (var (path, value) in view.Under(EtcdKeys.Registrations))
        {
            var parts = path.Split('/', 3);
            if (parts.Length == 3 && SpiffeId.TryParse(value, out var id, out _))
            {
                endpoints.Add(new PodEndpoint(parts[1], parts[0], parts[2], id));
            }
        }
        return endpoints;
    }
}
