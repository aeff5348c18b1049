using System.Globalization;

namespace MeshGuard.Etcd;

/// <summary>
/// Config versions on etcd are this base plus the etcd revision the config was read at: the same on every
/// replica, and only growing. The base is the time in milliseconds when the first replica started on this etcd,
/// so a mesh moved from the file store (whose versions are times in milliseconds) to etcd keeps its versions
/// growing, and sidecars holding a snapshot from before the move take the new ones.
/// </summary>
public sealed record EtcdVersionBase(long Value)
{
    public long VersionAt(long revision) => Value + revision;

    /// <summary>The base etcd holds, recorded now if no replica did before.</summary>
    public static async Task<EtcdVersionBase> ReadOrCreateAsync(EtcdConnection etcd, TimeProvider time, CancellationToken cancellation)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        await etcd.TxnAsync(EtcdTxn.When(EtcdTxn.Absent(EtcdKeys.VersionBase), EtcdTxn.Put(EtcdKeys.VersionBase, now)), cancellation);
        var stored = await etcd.GetAsync(EtcdKeys.VersionBase, cancellation)
            ?? throw new InvalidOperationException($"{EtcdKeys.VersionBase} vanished from {etcd.Location} right after it was written");
        return long.TryParse(stored.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? new EtcdVersionBase(value)
            : throw new InvalidOperationException($"{EtcdKeys.VersionBase} in {etcd.Location} is '{stored.Value}', not a number of milliseconds");
    }
}
