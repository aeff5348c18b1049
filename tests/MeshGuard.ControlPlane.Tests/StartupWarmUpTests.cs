using System.Net;

namespace MeshGuard.ControlPlane.Tests;

public sealed class StartupWarmUpTests
{
    [Theory]
    [InlineData("0.0.0.0", "127.0.0.1")]
    [InlineData("::", "::1")]
    [InlineData("127.0.0.1", "127.0.0.1")]
    [InlineData("10.1.2.3", "10.1.2.3")]
    public void TheControlPlaneCallsItselfOnLoopbackWhereItListensEverywhereAndOnItsOwnAddressOtherwise(string bind, string called) =>
        Assert.Equal(IPAddress.Parse(called), StartupWarmUp.SelfAddress(bind));
}
