using System.Security.Cryptography;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Etcd;
using MeshGuard.Tests.Common;

namespace MeshGuard.ControlPlane.Tests.SharedState;

public sealed class StoreKeyTests
{
    private static StoreKey NewKey() => StoreKey.FromBase64(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)), "test");

    [Fact]
    public void ASealedValueOpensWithTheSameKeyForTheSameSlotAndHoldsNoPlaintext()
    {
        using var key = NewKey();
        const string secret = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";
        var sealedValue = key.Seal(secret, CaDocument.RootKeySlot);
        Assert.True(StoreKey.IsSealed(sealedValue));
        Assert.DoesNotContain("PRIVATE KEY", sealedValue, StringComparison.Ordinal);
        Assert.NotEqual(sealedValue, key.Seal(secret, CaDocument.RootKeySlot)); // a fresh nonce each time
        Assert.Equal(secret, key.Open(sealedValue, CaDocument.RootKeySlot));
    }

    [Fact]
    public void AnotherKeyAMovedValueOrAnAlteredValueDoesNotOpen()
    {
        using var key = NewKey();
        using var other = NewKey();
        var sealedValue = key.Seal("secret", CaDocument.RootKeySlot);
        Assert.Contains("does not open with this store key", Assert.Throws<InvalidOperationException>(() => other.Open(sealedValue, CaDocument.RootKeySlot)).Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => key.Open(sealedValue, CaDocument.IntermediateKeySlot));
        var bytes = Convert.FromBase64String(sealedValue["mgsealed1:".Length..]);
        bytes[^1] ^= 1;
        Assert.Throws<InvalidOperationException>(() => key.Open("mgsealed1:" + Convert.ToBase64String(bytes), CaDocument.RootKeySlot));
        Assert.Contains("is not sealed", Assert.Throws<InvalidOperationException>(() => key.Open("-----BEGIN PRIVATE KEY-----", CaDocument.RootKeySlot)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("not base64!", "is not base64")]
    [InlineData("AAAA", "holds 3 bytes; the store key is 32 bytes")]
    public void AKeyThatIsNot32Base64BytesIsRefusedWithTheReason(string text, string reason) =>
        Assert.Contains(reason, Assert.Throws<InvalidOperationException>(() => StoreKey.FromBase64(text, "MESHGUARD_STORE_KEY")).Message, StringComparison.Ordinal);

    [Fact]
    public void AKeyFileOthersCanReadIsRefused()
    {
        using var directory = new TempDirectory();
        var file = directory.Combine("store.key");
        File.WriteAllText(file, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        Assert.Throws<InsecureFileException>(() => StoreKey.Load(file));
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        using var loaded = StoreKey.Load(file);
        Assert.Equal("x", loaded.Open(loaded.Seal("x", "k"), "k"));
    }

    [Theory]
    [InlineData("etcd:http://127.0.0.1:2379", 1)]
    [InlineData("etcd:http://10.0.0.1:2379, https://10.0.0.2:2379", 2)]
    public void AStoreLocationNamesEveryMember(string text, int members) =>
        Assert.Equal(members, StoreLocation.Parse(text, out _)!.Endpoints.Count);

    [Theory]
    [InlineData("http://127.0.0.1:2379", "must be etcd:URL")]
    [InlineData("etcd:ftp://127.0.0.1:2379", "is not an etcd endpoint")]
    [InlineData("etcd:http://127.0.0.1:2379/v3", "is not an etcd endpoint")]
    [InlineData("etcd:", "is not an etcd endpoint")]
    public void AStoreLocationThatIsNotEtcdUrlsIsRefusedWithTheReason(string text, string reason)
    {
        Assert.Null(StoreLocation.Parse(text, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }
}
