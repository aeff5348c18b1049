using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Spiffe;

namespace MeshGuard.FlowLog;

/// <summary>
/// Signer chains that verified against a trust bundle, so that the next signed record carrying the same chain checks
/// only its own signature. A sidecar puts the same chain in every checkpoint until its SVID rotates; the control
/// plane checks one closing checkpoint per uploaded segment, dozens a second under load, and decoding the chain and
/// building it cost some 0.6 ms each time (OpenSSL 3), as much as hashing the segment's thousand lines.
/// <para>
/// What a hit needs to give the same answer as a full check: the chain's text octet for octet, the same bundle
/// object (a rotated bundle is another object, and its chains are checked anew), and a record time within the
/// validity of every certificate the check could have used (the chain's and the bundle's roots): the chain
/// verifier's outcome depends on the time through those validity periods only. Only chains that verified are kept;
/// at most <see cref="MaxChains"/> per bundle, then the set starts over.
/// </para>
/// </summary>
internal static class VerifiedSigners
{
    internal const int MaxChains = 4096;

    private static readonly ConditionalWeakTable<TrustBundle, ConcurrentDictionary<string, VerifiedSigner>> ByBundle = [];

    /// <summary>The signer of <paramref name="chainPem"/> when it verified against <paramref name="bundle"/> for a time that covers <paramref name="at"/>.</summary>
    public static VerifiedSigner? Find(TrustBundle bundle, string chainPem, DateTimeOffset at) =>
        ByBundle.TryGetValue(bundle, out var chains) && chains.TryGetValue(chainPem, out var signer) && signer.Covers(at) ? signer : null;

    /// <summary>Keeps a chain that just verified: <paramref name="leaf"/> and <paramref name="intermediates"/> as decoded from it.</summary>
    public static VerifiedSigner? Keep(TrustBundle bundle, string chainPem, SpiffeId id, X509Certificate2 leaf, X509Certificate2Collection intermediates)
    {
        if (leaf.GetECDsaPublicKey() is not { } key)
        {
            return null;
        }
        var from = leaf.NotBefore.ToUniversalTime();
        var to = leaf.NotAfter.ToUniversalTime();
        foreach (var certificate in intermediates.Concat(bundle.Roots))
        {
            from = Max(from, certificate.NotBefore.ToUniversalTime());
            to = Min(to, certificate.NotAfter.ToUniversalTime());
        }
        var signer = new VerifiedSigner(id.ToString(), key, from, to);
        var chains = ByBundle.GetValue(bundle, static _ => new ConcurrentDictionary<string, VerifiedSigner>(StringComparer.Ordinal));
        if (chains.Count >= MaxChains)
        {
            chains.Clear();
        }
        chains[chainPem] = signer;
        return signer;
    }

    private static DateTime Max(DateTime a, DateTime b) => a > b ? a : b;

    private static DateTime Min(DateTime a, DateTime b) => a < b ? a : b;
}

/// <summary>A verified signer chain: the SPIFFE ID it proves, its leaf's key, and the times its verification holds for.</summary>
internal sealed class VerifiedSigner(string id, ECDsa key, DateTime from, DateTime to)
{
    public string Id => id;

    public bool Covers(DateTimeOffset at) => at.UtcDateTime >= from && at.UtcDateTime <= to;

    /// <summary>Whether <paramref name="signature"/> over <paramref name="payload"/> is the leaf key's; one check at a time per key.</summary>
    public bool Signed(byte[] payload, byte[] signature)
    {
        lock (key)
        {
            return key.VerifyData(payload, signature, HashAlgorithmName.SHA256);
        }
    }
}
