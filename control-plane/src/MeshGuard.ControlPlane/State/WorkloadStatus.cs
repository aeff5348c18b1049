using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.State;

/// <summary>
/// What this replica knows of each workload's sidecar, for the console: the last SVID it issued it (serial,
/// expiry) and its snapshot stream (open or not, the version last sent). A replica knows the sidecars it
/// served; with several replicas each shows its own.
/// </summary>
internal sealed class WorkloadStatus(TimeProvider time)
{
    public sealed record Sidecar(string SvidSerial, DateTimeOffset SvidNotAfter, DateTimeOffset IssuedAt, int OpenStreams, long SentVersion, DateTimeOffset? LastSent);

    private readonly ConcurrentDictionary<string, Sidecar> _sidecars = new(StringComparer.Ordinal);

    public void SvidIssued(SpiffeId id, X509Certificate2 svid) =>
        _sidecars.AddOrUpdate(id.ToString(),
            static (_, a) => new Sidecar(a.svid.SerialNumber, a.svid.NotAfter.ToUniversalTime(), a.now, 0, 0, null),
            static (_, known, a) => known with { SvidSerial = a.svid.SerialNumber, SvidNotAfter = a.svid.NotAfter.ToUniversalTime(), IssuedAt = a.now },
            (svid, now: time.GetUtcNow()));

    public void StreamOpened(SpiffeId id) => Update(id, static (s, _) => s with { OpenStreams = s.OpenStreams + 1 }, 0);

    public void Sent(SpiffeId id, long version) => Update(id, static (s, a) => s with { SentVersion = a.version, LastSent = a.now }, (version, now: time.GetUtcNow()));

    public void StreamClosed(SpiffeId id) => Update(id, static (s, _) => s with { OpenStreams = Math.Max(0, s.OpenStreams - 1) }, 0);

    public IReadOnlyList<KeyValuePair<string, Sidecar>> All() => [.. _sidecars.OrderBy(static s => s.Key, StringComparer.Ordinal)];

    private void Update<TArg>(SpiffeId id, Func<Sidecar, TArg, Sidecar> change, TArg argument) =>
        _sidecars.AddOrUpdate(id.ToString(),
            static (_, a) => a.change(new Sidecar("", DateTimeOffset.MinValue, DateTimeOffset.MinValue, 0, 0, null), a.argument),
            static (_, known, a) => a.change(known, a.argument),
            (change, argument));
}
