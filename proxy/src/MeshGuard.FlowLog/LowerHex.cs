using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MeshGuard.FlowLog;

/// <summary>
/// Octets as lower-case hex digits in ASCII, for the ids and hashes every request and every flow line carries (a request
/// id, a trace id, a line's SHA-256). The runtime's hex encoder went through a vector shuffle that the NativeAOT image
/// calls out of line on every use (1.4-2.5 % of the outbound sidecar's samples under load, for 16- to 32-octet values);
/// a lookup of two digits per octet is inlined and touches one 512-octet table.
/// </summary>
public static class LowerHex
{
    // The two digits of every octet value, high digit first.
    private static ReadOnlySpan<byte> Pairs =>
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"u8 +
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"u8 +
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"u8 +
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"u8;

    /// <summary>Writes the <c>2 * octets.Length</c> digits of <paramref name="octets"/> at the start of <paramref name="destination"/>.</summary>
    public static void Write(ReadOnlySpan<byte> octets, Span<byte> destination)
    {
        if (destination.Length < octets.Length * 2)
        {
            throw new ArgumentException("the destination holds fewer than two digits per octet", nameof(destination));
        }
        // References taken without indexing: no octets into an empty destination is nothing to write, not an error.
        ref var pairs = ref MemoryMarshal.GetReference(Pairs);
        ref var target = ref MemoryMarshal.GetReference(destination);
        for (var i = 0; i < octets.Length; i++)
        {
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref target, i * 2), Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref pairs, octets[i] * 2)));
        }
    }
}
