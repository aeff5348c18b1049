using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.ControlPlane.Tests.Attestation;

public sealed class JoinTokenStoreTests : IDisposable
{
    private static readonly SpiffeId Orders = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/orders");
    private readonly TempDirectory _temp = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-23T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
    private readonly JoinTokenStore _store;

    public JoinTokenStoreTests() => _store = new JoinTokenStore(_temp.Path, _time);

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void ATokenWorksExactlyOnce()
    {
        var token = _store.Create(Orders, TimeSpan.FromMinutes(10));
        var first = _store.Consume(token);
        Assert.Equal(JoinTokenStatus.Valid, first.Status);
        Assert.Equal(Orders, first.SpiffeId);
        var second = _store.Consume(token);
        Assert.Equal(JoinTokenStatus.AlreadyUsed, second.Status);
        Assert.Equal("join token was already used", second.Describe());
    }

    [Fact]
    public void AnExpiredTokenIsRefusedAsExpired()
    {
        var token = _store.Create(Orders, TimeSpan.FromMinutes(10));
        _time.Advance(TimeSpan.FromMinutes(10));
        var lookup = _store.Consume(token);
        Assert.Equal(JoinTokenStatus.Expired, lookup.Status);
        Assert.Equal("join token has expired", lookup.Describe());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("mgjt_doesnotexist")]
    [InlineData("../../etc/passwd")]
    public void AnUnknownTokenIsRefusedAsUnknown(string? token) =>
        Assert.Equal(JoinTokenStatus.Unknown, _store.Consume(token).Status);

    [Fact]
    public void FindDoesNotSpendTheToken()
    {
        var token = _store.Create(Orders, TimeSpan.FromMinutes(10));
        Assert.Equal(JoinTokenStatus.Valid, _store.Find(token).Status);
        Assert.Equal(JoinTokenStatus.Valid, _store.Consume(token).Status);
    }

    [Fact]
    public void TheStoreHoldsOnlyAHashOfTheTokenInAnOwnerOnlyFile()
    {
        var token = _store.Create(Orders, TimeSpan.FromMinutes(10));
        var files = Directory.GetFiles(Path.Combine(_temp.Path, "tokens"), "*.json");
        var file = Assert.Single(files);
        Assert.DoesNotContain(token, File.ReadAllText(file), StringComparison.Ordinal);
        Assert.DoesNotContain(token, file, StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
    }

    [Fact]
    public void ConcurrentConsumersLetOnlyOneThrough()
    {
        var token = _store.Create(Orders, TimeSpan.FromMinutes(10));
        var results = new JoinTokenStatus[16];
        Parallel.For(0, results.Length, i => results[i] = new JoinTokenStore(_temp.Path, _time).Consume(token).Status);
        Assert.Equal(1, results.Count(s => s == JoinTokenStatus.Valid));
    }
}
