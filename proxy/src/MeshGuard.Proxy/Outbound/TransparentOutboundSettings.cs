namespace MeshGuard.Proxy.Outbound;

/// <summary>The outbound port redirected connections arrive at, and whether traffic to addresses outside the mesh passes (allow-any) or is closed.</summary>
internal sealed record TransparentOutboundSettings(int OutboundPort, bool Passthrough);
