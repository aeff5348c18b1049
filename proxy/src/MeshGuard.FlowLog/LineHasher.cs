using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace MeshGuard.FlowLog;

/// <summary>
/// The SHA-256 of one line at a time, for the chain: the sidecar's writer hashes every line it writes and the control
/// plane every line it collects. Through the runtime's API each line's hash went through OpenSSL's provider layer
/// (finalize, re-initialize, the shim clearing the error queue around each call): 660-970 ns for a 655-byte line,
/// about half of it overhead. OpenSSL's SHA-256 functions themselves take a context of our own and do none of that
/// (430 ns for the same line). They are the same library the runtime loads for its own cryptography; where they cannot
/// be found (another OpenSSL, another platform) or do not give the known answer for a test vector, the runtime's
/// <see cref="IncrementalHash"/> serves. Not thread-safe: one per thread that hashes.
/// </summary>
public sealed unsafe partial class LineHasher : IDisposable
{
    public const int HashBytes = 32;

    // SHA256_CTX is 112 bytes; room to spare.
    private const int ContextBytes = 256;

    private static readonly bool NativeWorks = ProbeNative();

    private readonly IncrementalHash? _managed;
    private byte* _context;

    public LineHasher()
    {
        if (NativeWorks)
        {
            _context = (byte*)NativeMemory.AlignedAlloc(ContextBytes, 64);
        }
        else
        {
            _managed = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        }
    }

    /// <summary>Whether OpenSSL's own SHA-256 functions are in use (false: the runtime's API).</summary>
    public static bool UsesOpenSslDirectly => NativeWorks;

    /// <summary>Writes the SHA-256 of <paramref name="line"/> into <paramref name="hash"/> (32 bytes).</summary>
    public void Hash(ReadOnlySpan<byte> line, Span<byte> hash)
    {
        if (hash.Length < HashBytes)
        {
            throw new ArgumentException("a SHA-256 is 32 bytes", nameof(hash));
        }
        if (_managed is { } managed)
        {
            managed.AppendData(line);
            managed.GetHashAndReset(hash);
            return;
        }
        ObjectDisposedException.ThrowIf(_context is null, this);
        if (!NativeHash(_context, line, hash))
        {
            throw new CryptographicException("OpenSSL's SHA-256 failed");
        }
    }

    /// <summary>The SHA-256 of <paramref name="line"/> as 64 lower-case hex digits (ASCII) in <paramref name="hex"/>.</summary>
    public void HashHex(ReadOnlySpan<byte> line, Span<byte> hex)
    {
        Span<byte> hash = stackalloc byte[HashBytes];
        Hash(line, hash);
        LowerHex.Write(hash, hex);
    }

    public void Dispose()
    {
        _managed?.Dispose();
        if (_context is not null)
        {
            NativeMemory.AlignedFree(_context);
            _context = null;
        }
    }

    // The functions load and answer as SHA-256 must: "abc" from FIPS 180-2's examples.
    private static bool ProbeNative()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }
        try
        {
            var context = stackalloc byte[ContextBytes];
            Span<byte> hash = stackalloc byte[HashBytes];
            return NativeHash(context, "abc"u8, hash) && hash.SequenceEqual(SHA256.HashData("abc"u8));
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return false;
        }
    }

    // One line through OpenSSL's three calls on a context of ours; false when any of them says it failed.
    private static bool NativeHash(byte* context, ReadOnlySpan<byte> line, Span<byte> hash)
    {
        fixed (byte* data = line)
        fixed (byte* output = hash)
        {
            return Native.Init(context) == 1 && Native.Update(context, data, (nuint)line.Length) == 1 && Native.Final(output, context) == 1;
        }
    }

    private static partial class Native
    {
        private const string Library = "libcrypto.so.3";

        [LibraryImport(Library, EntryPoint = "SHA256_Init")]
        public static partial int Init(byte* context);

        [LibraryImport(Library, EntryPoint = "SHA256_Update")]
        public static partial int Update(byte* context, byte* data, nuint length);

        [LibraryImport(Library, EntryPoint = "SHA256_Final")]
        public static partial int Final(byte* hash, byte* context);
    }
}
