using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;

namespace MeshGuard.ControlPlane.Tests.Sources;

public sealed class RevocationListTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private string File => Path.Combine(_temp.Path, "revocations.txt");

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void AMissingFileRevokesNobody()
    {
        var list = RevocationList.Load(File, out var error);
        Assert.Null(error);
        Assert.Empty(list.Ids);
    }

    [Fact]
    public void RevokeAndUnrevokeKeepOneSortedEntryPerIdentityAndCommentsAreIgnored()
    {
        var frontend = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/frontend");
        var billing = SpiffeId.Parse("spiffe://mesh.local/ns/billing/sa/api");
        RevocationList.Update(File, frontend, revoke: true);
        RevocationList.Update(File, billing, revoke: true);
        var list = RevocationList.Update(File, frontend, revoke: true);
        Assert.Equal([billing, frontend], list.Ids);
        Assert.StartsWith("#", System.IO.File.ReadAllText(File), StringComparison.Ordinal);
        Assert.True(list.Contains(frontend));

        list = RevocationList.Update(File, frontend, revoke: false);
        Assert.Equal([billing], list.Ids);
        Assert.False(list.Contains(frontend));
    }

    [Fact]
    public void AFileWithABadLineIsRefusedWholeNamingFileAndLine()
    {
        System.IO.File.WriteAllText(File, "# revoked\nspiffe://mesh.local/ns/shop/sa/frontend\n\nspiffe://mesh.local/ns/shop/sa/../x  # typo\n");
        var list = RevocationList.Load(File, out var error);
        Assert.Empty(list.Ids);
        Assert.NotNull(error);
        Assert.StartsWith($"{File}:4: ", error, StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => RevocationList.Update(File, SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/orders"), revoke: true));
    }
}
