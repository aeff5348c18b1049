using Etcdserverpb;
using Google.Protobuf;

namespace MeshGuard.Etcd;

/// <summary>
/// The few transactions MeshGuard sends, each a guard and what to do when it holds: write a key only if it is
/// absent (the CA, the mesh default, the leader), or only if it is still at the revision that was read (a
/// token spent, a list updated, a witness record replaced).
/// </summary>
public static class EtcdTxn
{
    public static Compare Absent(string key) => new()
    {
        Key = EtcdKeys.Key(key),
        Target = Compare.Types.CompareTarget.Create,
        Result = Compare.Types.CompareResult.Equal,
        CreateRevision = 0,
    };

    /// <summary>The key is at <paramref name="modRevision"/> (0: absent).</summary>
    public static Compare Unchanged(ByteString key, long modRevision) => new()
    {
        Key = key,
        Target = Compare.Types.CompareTarget.Mod,
        Result = Compare.Types.CompareResult.Equal,
        ModRevision = modRevision,
    };

    public static Compare Unchanged(string key, long modRevision) => Unchanged(EtcdKeys.Key(key), modRevision);

    public static RequestOp Put(string key, string value, long lease = 0) =>
        new() { RequestPut = new PutRequest { Key = EtcdKeys.Key(key), Value = EtcdKeys.Key(value), Lease = lease } };

    public static RequestOp Put(string key, ByteString value) => new() { RequestPut = new PutRequest { Key = EtcdKeys.Key(key), Value = value } };

    public static RequestOp Delete(ByteString key) => new() { RequestDeleteRange = new DeleteRangeRequest { Key = key } };

    public static TxnRequest When(Compare guard, params RequestOp[] then)
    {
        var request = new TxnRequest();
        request.Compare.Add(guard);
        request.Success.Add(then);
        return request;
    }
}
