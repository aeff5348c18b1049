namespace MeshGuard.Proxy.Routing;

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
