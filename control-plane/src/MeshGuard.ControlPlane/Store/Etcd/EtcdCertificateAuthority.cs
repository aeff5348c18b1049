using MeshGuard.ControlPlane.Ca;
using MeshGuard.Store;

namespace MeshGuard.ControlPlane.Store.Etcd;

/// <summary>
/// The mesh CA kept in etcd, so every replica signs with the same intermediate: read and unsealed at start;
/// made by the first replica to start (a create-only transaction, so two starting at once still make one CA),
/// or taken from a data directory's CA by <c>meshguard-cp init --store</c>.
/// </summary>
internal static class EtcdCertificateAuthority
{
    public static async Task<CertificateAuthority> LoadOrCreateAsync(
        EtcdConnection etcd, StoreKey key, string trustDomain, TimeProvider time, CancellationToken cancellation)
    {
        var document = await CaDocument.ReadAsync(etcd, cancellation);
        if (document is null)
        {
            await Seal(CertificateAuthority.CreateMaterial(trustDomain, time), trustDomain, key).CreateAsync(etcd, cancellation);
            document = await CaDocument.ReadAsync(etcd, cancellation)
                ?? throw new InvalidOperationException($"{EtcdKeys.Ca} vanished from {etcd.Location} right after it was written");
        }
        var material = new CaMaterial(
            document.RootPem, key.Open(document.SealedRootKey, CaDocument.RootKeySlot),
            document.IntermediatePem, key.Open(document.SealedIntermediateKey, CaDocument.IntermediateKeySlot));
        return CertificateAuthority.FromMaterial(material, trustDomain, $"{etcd.Location} {EtcdKeys.Ca}", time);
    }

    /// <summary>Puts an existing CA into etcd (meshguard-cp init --store); false if etcd holds one already.</summary>
    public static Task<bool> UploadAsync(EtcdConnection etcd, StoreKey key, CaMaterial material, string trustDomain, CancellationToken cancellation) =>
        Seal(material, trustDomain, key).CreateAsync(etcd, cancellation);

    private static CaDocument Seal(CaMaterial material, string trustDomain, StoreKey key) => new(
        trustDomain,
        material.RootPem, key.Seal(material.RootKeyPem, CaDocument.RootKeySlot),
        material.IntermediatePem, key.Seal(material.IntermediateKeyPem, CaDocument.IntermediateKeySlot));
}
