using System.Collections.Frozen;
using MeshGuard.Policy.Engine;
using MeshGuard.Proxy.Routing;

namespace MeshGuard.Proxy.Config;

/// <summary>
/// Everything one control-plane snapshot sets, built whole before it is published: the inbound decision table,
/// the revoked identities, the outbound routes and where they came from. A reader takes <see cref="SidecarConfigSource.Current"/>
/// once and decides with that one object, so a request never meets the policies of one version and the revocations
/// or routes of another.
/// </summary>
internal sealed class SidecarConfig(
    long version, DateTimeOffset issuedAt, DateTimeOffset appliedAt, SnapshotSource source,
    WorkloadAuthorizer authorizer, FrozenSet<string> revoked, ServiceRoutes routes)
{
    public long Version { get; } = version;

    public DateTimeOffset IssuedAt { get; } = issuedAt;

    public DateTimeOffset AppliedAt { get; } = appliedAt;

    public SnapshotSource Source { get; } = source;

    /// <summary>The decision table for this workload's inbound calls.</summary>
    public WorkloadAuthorizer Authorizer { get; } = authorizer;

    /// <summary>SPIFFE IDs the control plane revoked: denied whatever the policies say.</summary>
    public FrozenSet<string> Revoked { get; } = revoked;

    /// <summary>Where the app's outbound calls go.</summary>
    public ServiceRoutes Routes { get; } = routes;

    /// <summary>One lookup; none at all while nothing is revoked (the usual case).</summary>
    public bool IsRevoked(string spiffeId) => Revoked.Count != 0 && Revoked.Contains(spiffeId);
}

/// <summary>Where the snapshot in force came from.</summary>
public enum SnapshotSource
{
    Stream,
    Disk,
}
