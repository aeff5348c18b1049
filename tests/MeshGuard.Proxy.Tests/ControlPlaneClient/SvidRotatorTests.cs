using MeshGuard.Proxy.ControlPlaneClient;

namespace MeshGuard.Proxy.Tests.ControlPlaneClient;

public sealed class SvidRotatorTests
{
    private static readonly DateTimeOffset Received = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(0.0, 39 * 60)]  // 65% of an hour
    [InlineData(0.5, 42 * 60)]  // 70%
    [InlineData(1.0, 45 * 60)]  // 75%
    public void RenewsAtAboutSeventyPercentOfTheLifeLeft(double jitter, int expectedSeconds) =>
        Assert.Equal(Received.AddSeconds(expectedSeconds), SvidRotator.RenewalTime(Received, Received.AddHours(1), jitter));

    [Fact]
    public void ShortLivedSvidsRenewWellBeforeExpiry()
    {
        var renewAt = SvidRotator.RenewalTime(Received, Received.AddSeconds(5), 1.0);
        Assert.True(renewAt <= Received.AddSeconds(3.75));
    }

    [Fact]
    public void JitterOutsideZeroToOneIsClamped()
    {
        Assert.Equal(SvidRotator.RenewalTime(Received, Received.AddHours(1), 1.0), SvidRotator.RenewalTime(Received, Received.AddHours(1), 7));
        Assert.Equal(SvidRotator.RenewalTime(Received, Received.AddHours(1), 0.0), SvidRotator.RenewalTime(Received, Received.AddHours(1), -3));
    }

    [Fact]
    public void AnAlreadyExpiredSvidRenewsAtOnce() =>
        Assert.Equal(Received, SvidRotator.RenewalTime(Received, Received.AddSeconds(-1), 0.5));
}
