using System.Text.Json;
using System.Text.Json.Serialization;

namespace MeshGuard.Store;

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

    public static async Task<CaDocument?> ReadAsync(EtcdConnection etcd, CancellationToken cancellation)
    {
        var stored = await etcd.GetAsync(EtcdKeys.Ca, cancellation);
        if (stored is null)
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize(stored.Value.Value, StoreJsonContext.Default.CaDocument)
                ?? throw new InvalidOperationException($"{EtcdKeys.Ca} in {etcd.Location} is empty");
        }
        catch (JsonException e)
        {
            throw new InvalidOperationException($"{EtcdKeys.Ca} in {etcd.Location} is not a MeshGuard CA: {e.Message}");
        }
    }

    /// <summary>Writes this CA unless one is there already; true if this one was written.</summary>
    public async Task<bool> CreateAsync(EtcdConnection etcd, CancellationToken cancellation)
    {
        if (!StoreKey.IsSealed(SealedRootKey) || !StoreKey.IsSealed(SealedIntermediateKey))
        {
            throw new InvalidOperationException("the CA's keys must be sealed before they go into the store");
        }
        var create = EtcdTxn.When(EtcdTxn.Absent(EtcdKeys.Ca), EtcdTxn.Put(EtcdKeys.Ca, JsonSerializer.Serialize(this, StoreJsonContext.Default.CaDocument)));
        return (await etcd.TxnAsync(create, cancellation)).Succeeded;
    }
}

[JsonSerializable(typeof(CaDocument))]
internal sealed partial class StoreJsonContext : JsonSerializerContext;
