using System.Text.Json;
using System.Text.Json.Serialization;

namespace MeshGuard.Etcd;

/// <summary>
/// The CA as one etcd value (<see cref="EtcdKeys.Ca"/>): certificates in PEM, private keys sealed with the
/// <see cref="StoreKey"/>. Written once, by whichever replica starts first, with a create-only transaction.
/// </summary>
public sealed record CaDocument(
    [property: JsonPropertyName("trust_domain")] string TrustDomain,
    [property: JsonPropertyName("root_crt")] string RootPem,
    [property: JsonPropertyName("root_key")] string SealedRootKey,
    [property: JsonPropertyName("intermediate_crt")] string IntermediatePem,
    [property: JsonPropertyName("intermediate_key")] string SealedIntermediateKey)
{
    /// <summary>The store key each sealed key is bound to.</summary>
    public const string RootKeySlot = EtcdKeys.Ca + "#root_key";
    public const string IntermediateKeySlot = EtcdKeys.Ca + "#intermediate_key";

    public static async Task<CaDocument?> ReadAsync(EtcdConnection etcd, CancellationToken cancellation) =>
        (await ReadVersionedAsync(etcd, cancellation))?.Document;

    /// <summary>The CA with the etcd revision it was last written at (to replace it only if nobody else did).</summary>
    public static async Task<(CaDocument Document, long ModRevision)?> ReadVersionedAsync(EtcdConnection etcd, CancellationToken cancellation)
    {
        var stored = await etcd.GetAsync(EtcdKeys.Ca, cancellation);
        if (stored is not { } found)
        {
            return null;
        }
        try
        {
            var document = JsonSerializer.Deserialize(found.Value, StoreJsonContext.Default.CaDocument)
                ?? throw new InvalidOperationException($"{EtcdKeys.Ca} in {etcd.Location} is empty");
            return (document, found.ModRevision);
        }
        catch (JsonException e)
        {
            throw new InvalidOperationException($"{EtcdKeys.Ca} in {etcd.Location} is not a MeshGuard CA: {e.Message}");
        }
    }

    /// <summary>Writes this CA unless one is there already; true if this one was written.</summary>
    public Task<bool> CreateAsync(EtcdConnection etcd, CancellationToken cancellation) => WriteAsync(etcd, EtcdTxn.Absent(EtcdKeys.Ca), cancellation);

    /// <summary>Writes this CA over the one read at <paramref name="modRevision"/>, unless it changed since; true if written.</summary>
    public Task<bool> ReplaceAsync(EtcdConnection etcd, long modRevision, CancellationToken cancellation) =>
        WriteAsync(etcd, EtcdTxn.Unchanged(EtcdKeys.Ca, modRevision), cancellation);

    private async Task<bool> WriteAsync(EtcdConnection etcd, Etcdserverpb.Compare guard, CancellationToken cancellation)
    {
        if (!StoreKey.IsSealed(SealedRootKey) || !StoreKey.IsSealed(SealedIntermediateKey))
        {
            throw new InvalidOperationException("the CA's keys must be sealed before they go into the store");
        }
        return (await etcd.TxnAsync(EtcdTxn.When(guard, EtcdTxn.Put(EtcdKeys.Ca, JsonSerializer.Serialize(this, StoreJsonContext.Default.CaDocument))), cancellation)).Succeeded;
    }
}

/// <summary>One registration in etcd: who serves there, and when its sidecar last attested or renewed.</summary>
public sealed record RegistrationRecord(
    [property: JsonPropertyName("spiffe_id")] string SpiffeId,
    [property: JsonPropertyName("seen_at")] DateTimeOffset SeenAt);

[JsonSerializable(typeof(CaDocument))]
[JsonSerializable(typeof(RegistrationRecord))]
public sealed partial class StoreJsonContext : JsonSerializerContext;
