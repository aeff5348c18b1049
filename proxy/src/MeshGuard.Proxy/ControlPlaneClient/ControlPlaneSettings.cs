namespace MeshGuard.Proxy.ControlPlaneClient;

/// <summary>Where the control plane's gRPC replicas are, and where the last good snapshot is kept (none: not kept).</summary>
internal sealed record ControlPlaneSettings(IReadOnlyList<Uri> Grpcs, string? StateDirectory);
