using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Spiffe;

namespace MeshGuard.Etcd;

/// <summary>The revocation list in etcd (<see cref="EtcdKeys.Revocations"/>), in the format of revocations.txt.</summary>
public static class EtcdRevocations
{
    public static async Task<RevocationList> ReadAsync(EtcdConnection etcd, CancellationToken cancellation) =>
        Parse((await etcd.GetAsync(EtcdKeys.Revocations, cancellation))?.Value ?? "");

    /// <summary>
    /// Adds or removes one identity: read, change, and write only if nobody wrote in between (else read again),
    /// so two operators revoking at once both land.
    /// </summary>
    public static async Task<RevocationList> UpdateAsync(EtcdConnection etcd, SpiffeId id, bool revoke, CancellationToken cancellation)
    {
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var stored = await etcd.GetAsync(EtcdKeys.Revocations, cancellation);
            var text = Parse(stored?.Value ?? "").With(id, revoke);
            var write = EtcdTxn.When(EtcdTxn.Unchanged(EtcdKeys.Revocations, stored?.ModRevision ?? 0), EtcdTxn.Put(EtcdKeys.Revocations, text));
            if ((await etcd.TxnAsync(write, cancellation)).Succeeded)
            {
                return Parse(text);
            }
        }
        throw new IOException($"{EtcdKeys.Revocations} in {etcd.Location} kept changing under ten attempts to update it; try again");
    }

    private static RevocationList Parse(string text) =>
        RevocationList.Parse(text, "etcd " + EtcdKeys.Revocations, out var error) is var list && error is null ? list : throw new InvalidDataException(error);
}
