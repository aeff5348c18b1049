using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Registry;

/// <summary>
/// The registry's rule for every claim a sidecar makes at attestation or renewal: the identity must be one the
/// platform lets serve that service (<see cref="ServiceBindings"/>), and an address another identity holds is not
/// taken from it while that identity is still seen (renewing) within three SVID lifetimes, as the etcd sweep counts.
/// Both registrars (the data directory's and etcd's) ask it.
/// </summary>
internal sealed class SecureNaming(ServiceBindingStore bindings, TimeSpan svidTtl, TimeProvider time)
{
    public ServiceBindings Bindings => bindings.Current;

    /// <summary>Null when <paramref name="id"/> may claim <paramref name="service"/> at <paramref name="address"/>, else why not.</summary>
    /// <param name="holder">Who holds the address now, and when it was last seen; null when nobody does.</param>
    public string? Check(string service, SpiffeId id, string address, (SpiffeId Owner, DateTimeOffset SeenAt)? holder)
    {
        var ns = id.GetPathValue("ns") ?? "";
        if (!bindings.Current.MayServe(service, ns, id))
        {
            return ServiceBindings.Refusal(service, ns, id);
        }
        if (holder is { } held && held.Owner != id && time.GetUtcNow() - held.SeenAt < svidTtl * 3)
        {
            return $"{address} is registered to {held.Owner}: one identity never takes another's address";
        }
        return null;
    }
}
