using MeshGuard.Proxy.Inbound;

namespace MeshGuard.Proxy.Tests.Inbound;

public sealed class PerCallerTests
{
    [Fact]
    public void EachIdentityGetsItsOwnUpToTheBoundAndTheRestShareOne()
    {
        var made = 0;
        var perCaller = new PerCaller<object>(() =>
        {
            made++;
            return new object();
        });
        var first = perCaller.For("spiffe://mesh.local/ns/shop/sa/a");
        Assert.Same(first, perCaller.For("spiffe://mesh.local/ns/shop/sa/a"));
        Assert.NotSame(first, perCaller.For("spiffe://mesh.local/ns/shop/sa/b"));
        Assert.NotSame(perCaller.Shared, first);
        for (var i = 2; i < PerCaller<object>.MaxCallers; i++)
        {
            perCaller.For($"spiffe://mesh.local/ns/shop/sa/{i}");
        }
        // The shared one and one per identity, no more.
        Assert.Equal(PerCaller<object>.MaxCallers + 1, made);
        Assert.Same(perCaller.Shared, perCaller.For("spiffe://mesh.local/ns/shop/sa/one-too-many"));
        Assert.Same(first, perCaller.For("spiffe://mesh.local/ns/shop/sa/a"));
        Assert.Equal(PerCaller<object>.MaxCallers + 1, perCaller.All.Count());
        Assert.Same(perCaller.Shared, perCaller.All.First());
    }
}
