using System.Text.Json;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.Etcd;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.SharedState;

/// <summary>
/// Registrations in etcd (<c>/meshguard/registrations/NS/SERVICE/ADDRESS</c>: the SPIFFE ID and when its sidecar
/// was last seen), so every replica's service table holds every sidecar, whichever replica it attested at. A
/// renewal writes only when the last sighting is older than half an SVID lifetime; the leader removes endpoints
/// whose sidecar has not renewed within three lifetimes (<see cref="SweepStaleAsync"/>), so sidecars that are
/// gone leave the table.
/// </summary>
internal sealed class EtcdEndpointRegistrar(EtcdConnection etcd, EtcdMeshState state, SecureNaming naming, ControlPlaneSettings settings, TimeProvider time) : IEndpointRegistrar
{
    public string? Check(string service, SpiffeId id, string address) => naming.Check(service, id, address, Holder(state.Current, address, id));

    /// <summary>
    /// Who else holds <paramref name="address"/> in the view (under any service), and when it was last seen. Replicas
    /// check against the view they read; two claims racing on two replicas within one watch delay are not serialized.
    /// </summary>
    private static (SpiffeId Owner, DateTimeOffset SeenAt)? Holder(EtcdView view, string address, SpiffeId claimant)
    {
        (SpiffeId, DateTimeOffset)? holder = null;
        foreach (var (path, value) in view.Under(EtcdKeys.Registrations))
        {
            if (path.EndsWith("/" + address, StringComparison.Ordinal) && Parse(value) is { } record
                && SpiffeId.TryParse(record.SpiffeId, out var owner, out _) && owner != claimant
                && (holder is null || record.SeenAt > holder.Value.Item2))
            {
                holder = (owner, record.SeenAt);
            }
        }
        return holder;
    }

    public async Task<string?> RegisterAsync(string service, SpiffeId id, string address, CancellationToken cancellation)
    {
        if (Check(service, id, address) is { } refusal)
        {
            return refusal;
        }
        var key = EtcdKeys.Registration(id.GetPathValue("ns") ?? "default", service, address);
        var now = time.GetUtcNow();
        if (state.Current.Keys.TryGetValue(key, out var known) && Parse(known) is { } record
            && record.SpiffeId == id.ToString() && now - record.SeenAt < settings.SvidTtl / 2)
        {
            return null;
        }
        await etcd.PutAsync(key, JsonSerializer.Serialize(new RegistrationRecord(id.ToString(), now), StoreJsonContext.Default.RegistrationRecord), cancellation);
        return null;
    }

    /// <summary>The endpoints a view holds; keys that do not parse are skipped (only replicas write them).</summary>
    public static List<PodEndpoint> Endpoints(EtcdView view)
    {
        var endpoints = new List<PodEndpoint>();
        foreach (var (path, value) in view.Under(EtcdKeys.Registrations))
        {
            var parts = path.Split('/', 3);
            if (parts.Length == 3 && Parse(value) is { } record && SpiffeId.TryParse(record.SpiffeId, out var id, out _))
            {
                endpoints.Add(new PodEndpoint(parts[1], parts[0], parts[2], id));
            }
        }
        return endpoints;
    }

    /// <summary>The leader's sweep: removes registrations last seen more than <paramref name="maxAge"/> ago; returns how many.</summary>
    public static Task<int> SweepStaleAsync(EtcdConnection etcd, TimeSpan maxAge, TimeProvider time, CancellationToken cancellation) =>
        etcd.SweepAsync(EtcdKeys.Registrations, json => Parse(json) is not { } record || time.GetUtcNow() - record.SeenAt > maxAge, cancellation);

    private static RegistrationRecord? Parse(string json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, StoreJsonContext.Default.RegistrationRecord);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
