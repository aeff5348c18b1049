using System.Collections.Concurrent;
using Google.Protobuf;
using MeshGuard.Contracts.V1;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;

namespace MeshGuard.ControlPlane.Distribution;

/// <summary>
/// The bytes of each sidecar's snapshot. What every sidecar of one config version gets alike (version, default,
/// services, bundle, revocations) is serialized once per version; what is its own (its ID, and the policies
/// selecting its service account, serialized once per service account) is appended. Protobuf fields appended to
/// a message make the message with those fields, so the bytes parse as the whole snapshot: a change sent to a
/// thousand streams serializes the service table once, not a thousand times.
/// </summary>
internal sealed class SnapshotBuilder(CertificateAuthority ca)
{
    private sealed record Parts(MeshConfig Config, byte[] Shared, ConcurrentDictionary<(string Ns, string Sa), ByteString> Policies);

    private readonly Lock _gate = new();
    private Parts? _latest;

    public byte[] Build(MeshConfig config, string workloadId, string ns, string sa)
    {
        var parts = PartsOf(config);
        var policies = parts.Policies.GetOrAdd((ns, sa), static (key, set) => ByteString.CopyFrom(PolicyCodec.Serialize(set.Selecting(key.Ns, key.Sa))), config.Policies.Set);
        var own = new Snapshot { WorkloadId = workloadId, PoliciesJson = policies };
        var content = new byte[parts.Shared.Length + own.CalculateSize()];
        parts.Shared.CopyTo(content, 0);
        own.WriteTo(content.AsSpan(parts.Shared.Length));
        return content;
    }

    // Streams woken by one change all ask for the same version: the first builds its parts, the others wait and reuse them.
    private Parts PartsOf(MeshConfig config)
    {
        var parts = Volatile.Read(ref _latest);
        if (parts is not null && ReferenceEquals(parts.Config, config))
        {
            return parts;
        }
        lock (_gate)
        {
            if (_latest is not null && ReferenceEquals(_latest.Config, config))
            {
                return _latest;
            }
            parts = new Parts(config, Shared(config).ToByteArray(), new());
            if (_latest is null || _latest.Config.Version <= config.Version)
            {
                Volatile.Write(ref _latest, parts);
            }
            return parts;
        }
    }

    private Snapshot Shared(MeshConfig config)
    {
        var snapshot = new Snapshot
        {
            Version = config.Version,
            IssuedAtUnixMs = config.IssuedAt.ToUnixTimeMilliseconds(),
            MeshDefault = config.Policies.Set.MeshDefault.ToText(),
            TrustBundlePem = ca.Bundle.ToPem(),
        };
        snapshot.Services.AddRange(config.Services.Services);
        foreach (var revoked in config.Revoked.Ids)
        {
            snapshot.RevokedIds.Add(revoked.ToString());
        }
        return snapshot;
    }
}
