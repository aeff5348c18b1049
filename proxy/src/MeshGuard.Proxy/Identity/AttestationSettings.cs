namespace MeshGuard.Proxy.Identity;

/// <summary>What attesting needs: the bootstrap replicas, the proof (join token or service-account token file) and the workload's registration.</summary>
internal sealed record AttestationSettings(
    IReadOnlyList<Uri> Bootstraps, string? JoinToken, string? ServiceAccountTokenFile, string Service, string AdvertiseAddress);
