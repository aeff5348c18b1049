using MeshGuard.Proxy.ControlPlaneClient;
using MeshGuard.Proxy.Identity;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshGuard.Proxy.Tests.ControlPlaneClient;

public sealed class ControlPlaneChannelTests
{
    private static ControlPlaneChannel Channel(params string[] replicas)
    {
        var identity = new WorkloadIdentity(TimeProvider.System);
        var settings = new ControlPlaneSettings([.. replicas.Select(r => new Uri(r))], StateDirectory: null);
        return new ControlPlaneChannel(settings, identity, new SpiffeConnector(identity, TimeProvider.System), NullLogger<ControlPlaneChannel>.Instance);
    }

    [Fact]
    public void AFailedReplicaHandsOverToTheNextAndAFullRoundAsksForBackoff()
    {
        using var channel = Channel("https://a:15010", "https://b:15010", "https://c:15010");
        Assert.Equal("a", channel.CurrentAddress.Host);

        Assert.True(channel.Failover(channel.CurrentIndex));
        Assert.Equal("b", channel.CurrentAddress.Host);
        Assert.True(channel.Failover(channel.CurrentIndex));
        Assert.Equal("c", channel.CurrentAddress.Host);
        // Third failure in a row: every replica was tried; back off before going round again (to a).
        Assert.False(channel.Failover(channel.CurrentIndex));
        Assert.Equal("a", channel.CurrentAddress.Host);
    }

    [Fact]
    public void TwoCallersFailingOnTheSameReplicaMoveOnOnce()
    {
        using var channel = Channel("https://a:15010", "https://b:15010", "https://c:15010");
        var failed = channel.CurrentIndex;

        channel.Failover(failed);
        channel.Failover(failed);

        Assert.Equal("b", channel.CurrentAddress.Host);
    }

    [Fact]
    public void ASuccessStartsTheRoundAfresh()
    {
        using var channel = Channel("https://a:15010", "https://b:15010");
        Assert.True(channel.Failover(channel.CurrentIndex));
        channel.Succeeded();

        Assert.True(channel.Failover(channel.CurrentIndex));
        Assert.Equal("a", channel.CurrentAddress.Host);
    }

    [Fact]
    public void ASingleControlPlaneAlwaysBacksOff()
    {
        using var channel = Channel("https://a:15010");
        Assert.False(channel.Failover(channel.CurrentIndex));
        Assert.Equal("a", channel.CurrentAddress.Host);
    }
}
