using MeshGuard.Spiffe;

namespace MeshGuard.Contracts;

/// <summary>The control plane's own workload identity; sidecars accept only this ID on its ports.</summary>
public static class ControlPlaneIdentity
{
    public const string Namespace = "meshguard-system";
    public const string ServiceAccount = "meshguard-cp";

    public static SpiffeId For(string trustDomain) => SpiffeId.ForWorkload(trustDomain, Namespace, ServiceAccount);
}
