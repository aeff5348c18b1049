using System.Security.Cryptography;

namespace MeshGuard.FlowLog.Tests;

/// <summary>The chain's line hash: OpenSSL's SHA-256 functions called directly, the same answer as the runtime's SHA-256.</summary>
public sealed class LineHasherTests
{
    [Fact]
    public void OnLinuxTheChainIsHashedByOpenSslsOwnFunctions()
    {
        // The images and CI run on Debian with OpenSSL 3: the fast path must be the one in use there.
        Assert.Equal(OperatingSystem.IsLinux(), LineHasher.UsesOpenSslDirectly);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(55)]
    [InlineData(56)]
    [InlineData(64)]
    [InlineData(655)]
    [InlineData(1_000_003)]
    public void EveryLengthHashesAsSha256Does(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        using var hasher = new LineHasher();
        var hash = new byte[LineHasher.HashBytes];
        // Twice with the same hasher: its context starts afresh for every line.
        for (var i = 0; i < 2; i++)
        {
            hasher.Hash(data, hash);
            Assert.Equal(SHA256.HashData(data), hash);
        }
        var hex = new byte[64];
        hasher.HashHex(data, hex);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), System.Text.Encoding.ASCII.GetString(hex));
    }

    [Fact]
    public void ADisposedHasherRefusesToHash()
    {
        var hasher = new LineHasher();
        hasher.Dispose();
        hasher.Dispose();
        Assert.Throws<ObjectDisposedException>(() => hasher.Hash("x"u8, new byte[32]));
    }
}
