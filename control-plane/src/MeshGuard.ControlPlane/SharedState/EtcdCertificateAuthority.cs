using System.Security.Cryptography.X509Certificates;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.Etcd;

namespace MeshGuard.ControlPlane.SharedState;

/// <summary>
/// The mesh CA kept in etcd, so every replica signs with the same intermediate: read and unsealed at start;
/// made by the first replica to start (a create-only transaction, so two starting at once still make one CA),
/// or taken from a data directory's CA by <c>meshguard-cp init --store</c>. The leader renews the intermediate
/// in etcd when it is due; every replica follows (<see cref="FollowAsync"/>).
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
        return CertificateAuthority.FromMaterial(Open(document, key), trustDomain, $"{etcd.Location} {EtcdKeys.Ca}", time);
    }

    /// <summary>The leader's part: a new intermediate into etcd once the current one is due; true if this call wrote one.</summary>
    public static async Task<bool> RenewIntermediateIfDueAsync(EtcdConnection etcd, StoreKey key, string trustDomain, TimeProvider time, CancellationToken cancellation)
    {
        if (await CaDocument.ReadVersionedAsync(etcd, cancellation) is not { } stored
            || CertificateAuthority.RenewIntermediateIfDue(Open(stored.Document, key), trustDomain, time) is not { } renewed)
        {
            return false;
        }
        return await Seal(renewed, trustDomain, key).ReplaceAsync(etcd, stored.ModRevision, cancellation);
    }

    /// <summary>Every replica's part: sign with the intermediate etcd holds, if it is not the one in use; true if it switched.</summary>
    public static async Task<bool> FollowAsync(EtcdConnection etcd, StoreKey key, CertificateAuthority ca, CancellationToken cancellation)
    {
        var document = await CaDocument.ReadAsync(etcd, cancellation);
        if (document is null || document.IntermediatePem.Trim() == ca.Intermediate.ExportCertificatePem().Trim())
        {
            return false;
        }
        ca.UseIntermediate(X509Certificate2.CreateFromPem(document.IntermediatePem, key.Open(document.SealedIntermediateKey, CaDocument.IntermediateKeySlot)));
        return true;
    }

    private static CaMaterial Open(CaDocument document, StoreKey key) => new(
        document.RootPem, key.Open(document.SealedRootKey, CaDocument.RootKeySlot),
        document.IntermediatePem, key.Open(document.SealedIntermediateKey, CaDocument.IntermediateKeySlot));

    /// <summary>Puts an existing CA into etcd (meshguard-cp init --store); false if etcd holds one already.</summary>
    public static Task<bool> UploadAsync(EtcdConnection etcd, StoreKey key, CaMaterial material, string trustDomain, CancellationToken cancellation) =>
        Seal(material, trustDomain, key).CreateAsync(etcd, cancellation);

    private static CaDocument Seal(CaMaterial material, string trustDomain, StoreKey key) => new(
        trustDomain,
        material.RootPem, key.Seal(material.RootKeyPem, CaDocument.RootKeySlot),
        material.IntermediatePem, key.Seal(material.IntermediateKeyPem, CaDocument.IntermediateKeySlot));
}
