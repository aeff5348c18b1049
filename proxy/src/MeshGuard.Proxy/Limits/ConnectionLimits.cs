using MeshGuard.Hosting;

namespace MeshGuard.Proxy.Limits;

/// <summary>The sidecar's two bounded data listeners, for /metrics.</summary>
internal sealed record ConnectionLimits(ConnectionLimit Inbound, ConnectionLimit Outbound);
