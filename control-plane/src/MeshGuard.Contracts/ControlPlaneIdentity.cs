using MeshGuard.Spiffe;

namespace MeshGuard.Contracts;

/// <summary>
/// The control plane's own identity: its TLS ports present it and it signs config snapshots. Sidecars
/// accept only this ID from the control plane.
/// </summary>
public static class ControlPlaneIdentity
{
    public const string Path = "/meshguard/control-plane";

    public static SpiffeId For(string trustDomain) => SpiffeId.Parse(SpiffeId.Scheme + trustDomain + Path);
}
