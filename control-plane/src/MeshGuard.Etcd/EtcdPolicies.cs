using Etcdserverpb;
using MeshGuard.Policy.Parsing;

namespace MeshGuard.Etcd;

/// <summary>
/// The policy documents in etcd as the replicas take them: each parsed (refused whole on a mistake), in key
/// order, a later document reusing an earlier one's policy name refused; and the mesh default the replicas
/// agreed on.
/// </summary>
public static class EtcdPolicies
{
    /// <param name="Version">The config version the replicas give this revision (<see cref="EtcdVersionBase"/>).</param>
    public sealed record Documents(long Revision, long Version, string? MeshDefault, IReadOnlyList<PolicyFileResult> Results);

    public static async Task<Documents> ReadAsync(EtcdConnection etcd, CancellationToken cancellation)
    {
        var range = await etcd.RangePrefixAsync(EtcdKeys.Policies, cancellation);
        var results = range.Kvs.Select(static kv => PolicyParser.Parse(kv.Value.ToStringUtf8(), kv.Key.ToStringUtf8())).ToList();
        var meshDefault = await etcd.GetAsync(EtcdKeys.MeshDefault, cancellation);
        var versionBase = await etcd.GetAsync(EtcdKeys.VersionBase, cancellation) is { } stored && long.TryParse(stored.Value, out var value) ? value : 0;
        return new Documents(range.Header.Revision, versionBase + range.Header.Revision, meshDefault?.Value, PolicyDirectory.CheckNamesAcrossFiles(results));
    }

    /// <summary>
    /// Every replica must enforce the same default for workloads no policy selects: the first records its
    /// <c>--default-policy</c>, the others must match it. Null when they agree, else why not.
    /// </summary>
    public static async Task<string?> AgreeMeshDefaultAsync(EtcdConnection etcd, string meshDefault, CancellationToken cancellation)
    {
        var record = EtcdTxn.When(EtcdTxn.Absent(EtcdKeys.MeshDefault), EtcdTxn.Put(EtcdKeys.MeshDefault, meshDefault));
        record.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = EtcdKeys.Key(EtcdKeys.MeshDefault) } });
        var result = await etcd.TxnAsync(record, cancellation);
        if (result.Succeeded)
        {
            return null;
        }
        var agreed = result.Responses[0].ResponseRange.Kvs[0].Value.ToStringUtf8();
        return agreed == meshDefault
            ? null
            : $"the replicas on {etcd.Location} enforce --default-policy {agreed} ({EtcdKeys.MeshDefault}); start this one with the same, or change it for all: stop them, delete that key, start them with the new default";
    }
}
