using System.Security.Cryptography;
using System.Security.Cryptography.Pkcs;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using MeshGuard.Contracts.V1;
using MeshGuard.Spiffe;

namespace MeshGuard.Contracts.Snapshots;

/// <summary>
/// Signs config snapshots as CMS SignedData with the control plane's SVID, and verifies them: the
/// signature, a signer chain to the trust bundle, and the signer's SPIFFE ID.
/// </summary>
public static class SnapshotSignature
{
    public static byte[] Sign(Snapshot snapshot, X509Svid signer) => SignContent(snapshot.ToByteArray(), signer);

    /// <summary>Any bytes signed as a snapshot would be: what the fuzzer feeds the decoder behind a valid signature.</summary>
    public static byte[] SignContent(byte[] content, X509Svid signer)
    {
        var cms = new SignedCms(new ContentInfo(content), detached: false);
        var cmsSigner = new CmsSigner(SubjectIdentifierType.SubjectKeyIdentifier, signer.Certificate)
        {
            DigestAlgorithm = new Oid("2.16.840.1.101.3.4.2.1"), // SHA-256
            IncludeOption = X509IncludeOption.EndCertOnly,
        };
        // The intermediates travel with the signature, so verifying needs only the trust bundle.
        cmsSigner.Certificates.AddRange(signer.Intermediates);
        cms.ComputeSignature(cmsSigner, silent: true);
        return cms.Encode();
    }

    /// <summary>The snapshot inside <paramref name="signedData"/>, or why it must be refused.</summary>
    public static SnapshotVerification Verify(ReadOnlySpan<byte> signedData, TrustBundle bundle, DateTimeOffset now)
    {
        var cms = new SignedCms();
        try
        {
            cms.Decode(signedData);
            // Signature over the content only: the chain is checked below against the mesh bundle, not the system store.
            cms.CheckSignature(verifySignatureOnly: true);
        }
        catch (CryptographicException e)
        {
            return SnapshotVerification.Fail($"signature does not verify: {e.Message}");
        }
        if (cms.SignerInfos.Count != 1 || cms.SignerInfos[0].Certificate is not { } signerCertificate)
        {
            return SnapshotVerification.Fail("snapshot must have exactly one signer with its certificate");
        }
        var chain = X509SvidVerifier.Verify(signerCertificate, cms.Certificates, bundle, now);
        if (!chain.IsValid)
        {
            return SnapshotVerification.Fail($"signer certificate refused: {chain.Error}");
        }
        var expected = ControlPlaneIdentity.For(bundle.TrustDomain);
        if (chain.Id != expected)
        {
            return SnapshotVerification.Fail($"signed by {chain.Id}, not the control plane ({expected})");
        }
        Snapshot snapshot;
        try
        {
            snapshot = Snapshot.Parser.ParseFrom(cms.ContentInfo.Content);
        }
        catch (InvalidProtocolBufferException e)
        {
            return SnapshotVerification.Fail($"snapshot content is malformed: {e.Message}");
        }
        return new SnapshotVerification(snapshot, null);
    }
}

public readonly record struct SnapshotVerification(Snapshot? Snapshot, string? Error)
{
    public bool IsValid => Snapshot is not null;

    public static SnapshotVerification Fail(string error) => new(null, error);
}
