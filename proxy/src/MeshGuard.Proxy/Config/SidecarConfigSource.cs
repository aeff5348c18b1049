using MeshGuard.Proxy.Routing;

namespace MeshGuard.Proxy.Config;

/// <summary>
/// The <see cref="SidecarConfig"/> in force, swapped whole in one write by the control-plane client. Until the
/// first snapshot there is none: every inbound call is denied (fail closed) and no outbound name resolves.
/// </summary>
internal sealed class SidecarConfigSource
{
    private SidecarConfig? _current;

    public SidecarConfig? Current => Volatile.Read(ref _current);

    /// <summary>The routes in force, empty before the first snapshot.</summary>
    public ServiceRoutes Routes => Volatile.Read(ref _current)?.Routes ?? ServiceRoutes.Empty;

    /// <summary>Publishes <paramref name="next"/> and returns the config it replaced.</summary>
    public SidecarConfig? Publish(SidecarConfig next) => Interlocked.Exchange(ref _current, next);
}
