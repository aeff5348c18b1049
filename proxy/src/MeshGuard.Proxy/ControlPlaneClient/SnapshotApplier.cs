using System.Collections.Frozen;
using MeshGuard.Contracts;
using MeshGuard.Contracts.Snapshots;
using MeshGuard.Contracts.V1;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Proxy.Authorization;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Routing;
using MeshGuard.Proxy.Runtime;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.ControlPlaneClient;

/// <summary>
/// Takes a signed snapshot only if 1. the CMS signature verifies, 2. the signer chains to our trust bundle
/// and is the control plane's SPIFFE ID, 3. it is meant for this workload, and 4. its version is newer than
/// the one in force. Then it compiles the policies and routes into one <see cref="SidecarConfig"/> and publishes
/// it in one swap, adopts a new trust bundle (only if it still trusts the sidecar's own SVID), closes the open
/// connections of newly revoked peers, and writes the signed bytes to disk (0600) for a restart while the control
/// plane is away. A refused snapshot changes nothing; it is counted and logged.
/// </summary>
internal sealed partial class SnapshotApplier(
    WorkloadIdentity identity, SidecarConfigSource config, RouteCompiler routes, PeerConnections connections, ControlPlaneSettings settings, StateFileWriter stateFiles, TimeProvider time,
    ILogger<SnapshotApplier> logger)
{
    private const string FileName = "snapshot.cms";
    private long _refused;

    public long Refused => Interlocked.Read(ref _refused);

    public long Version => config.Current?.Version ?? 0;

    /// <summary>Connected to the control plane's stream right now (set by the watcher).</summary>
    public bool Connected { get; set; }

    public DateTimeOffset? LastContact { get; set; }

    public bool TryApply(ReadOnlySpan<byte> signed, SnapshotSource source)
    {
        var now = time.GetUtcNow();
        var credentials = identity.Current;
        var verification = SnapshotSignature.Verify(signed, credentials.Bundle, now);
        if (!verification.IsValid)
        {
            return Refuse(source, verification.Error!);
        }
        var snapshot = verification.Snapshot!;
        var own = credentials.Id;
        if (snapshot.WorkloadId != own.ToString())
        {
            return Refuse(source, $"snapshot is for {snapshot.WorkloadId}, not {own}");
        }
        var current = Version;
        if (snapshot.Version <= current)
        {
            return Refuse(source, $"snapshot version {snapshot.Version} is not newer than {current}");
        }
        if (!MeshDefaults.TryParse(snapshot.MeshDefault, out var meshDefault))
        {
            return Refuse(source, $"unknown mesh default '{snapshot.MeshDefault}'");
        }
        TrustBundle? newBundle = null;
        if (snapshot.TrustBundlePem.Length > 0 && snapshot.TrustBundlePem != credentials.Bundle.ToPem())
        {
            // A root rotation: adopt the bundle only if it is of our trust domain and still trusts the SVID we hold.
            try
            {
                newBundle = TrustBundle.FromPem(snapshot.TrustBundlePem);
            }
            catch (FormatException e)
            {
                return Refuse(source, $"trust bundle does not parse: {e.Message}");
            }
            if (newBundle.TrustDomain != own.TrustDomain)
            {
                return Refuse(source, $"trust bundle is for {newBundle.TrustDomain}, not {own.TrustDomain}");
            }
            var svid = credentials.Svid;
            var check = X509SvidVerifier.Verify(svid.Certificate, svid.Intermediates, newBundle, now);
            if (!check.IsValid)
            {
                return Refuse(source, $"trust bundle would refuse this sidecar's own SVID: {check.Error}");
            }
        }
        IReadOnlyList<AccessPolicy> policies;
        try
        {
            policies = PolicyCodec.Deserialize(snapshot.PoliciesJson.Span);
        }
        catch (FormatException e)
        {
            return Refuse(source, $"policies do not parse: {e.Message}");
        }

        // Build everything first, then publish: readers never see half of a snapshot.
        var ns = own.GetPathValue("ns") ?? "";
        var sa = own.GetPathValue("sa") ?? "";
        var authorizer = new PolicySet(policies, meshDefault).For(ns, sa);
        var next = new SidecarConfig(
            snapshot.Version, DateTimeOffset.FromUnixTimeMilliseconds(snapshot.IssuedAtUnixMs), now, source, authorizer,
            snapshot.RevokedIds.ToFrozenSet(StringComparer.Ordinal),
            routes.Compile(new ServiceTable { Version = snapshot.Version, Services = { snapshot.Services } }));
        // The bundle first: a peer of the new root may be named by the routes published next.
        if (newBundle is not null)
        {
            identity.PublishBundle(newBundle);
            LogBundle(logger, newBundle.Roots.Count);
        }
        var previous = config.Publish(next);
        if (!next.Revoked.SetEquals(previous?.Revoked ?? FrozenSet<string>.Empty))
        {
            connections.CloseRevoked(next.Revoked);
        }
        if (source == SnapshotSource.Stream && settings.StateDirectory is { } state)
        {
            stateFiles.Write(Path.Combine(state, FileName), Convert.ToBase64String(signed), secret: true);
        }
        LogApplied(logger, snapshot.Version, source, authorizer.Policies.Count, snapshot.Services.Count);
        return true;
    }

    /// <summary>Applies the snapshot kept on disk, if there is one that still verifies.</summary>
    public bool TryApplyFromDisk()
    {
        if (settings.StateDirectory is not { } state || !File.Exists(Path.Combine(state, FileName)))
        {
            return false;
        }
        byte[] signed;
        try
        {
            signed = Convert.FromBase64String(File.ReadAllText(Path.Combine(state, FileName)));
        }
        catch (Exception e) when (e is FormatException or IOException)
        {
            return Refuse(SnapshotSource.Disk, $"stored snapshot unreadable: {e.Message}");
        }
        return TryApply(signed, SnapshotSource.Disk);
    }

    private bool Refuse(SnapshotSource source, string reason)
    {
        Interlocked.Increment(ref _refused);
        LogRefused(logger, source, reason, Version);
        return false;
    }

    [LoggerMessage(EventId = 120, Level = LogLevel.Information, Message = "applied config version {Version} from {Source}: {Policies} policies select this workload, {Services} services")]
    private static partial void LogApplied(ILogger logger, long version, SnapshotSource source, int policies, int services);

    [LoggerMessage(EventId = 122, Level = LogLevel.Information, Message = "trust bundle updated from the control plane: {Roots} root(s)")]
    private static partial void LogBundle(ILogger logger, int roots);

    [LoggerMessage(EventId = 121, Level = LogLevel.Warning, Message = "refused config snapshot from {Source}: {Reason}; version {Current} stays in force")]
    private static partial void LogRefused(ILogger logger, SnapshotSource source, string reason, long current);
}
