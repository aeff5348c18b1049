using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http1;
using Microsoft.AspNetCore.Http;

namespace MeshGuard.Proxy.Tests.Transport;

public sealed class HopByHopFieldsTests
{
    [Fact]
    public void EveryHeaderTheConnectionHeaderNamesIsRemovedAndOthersStay()
    {
        var headers = new FieldList
        {
            ["Connection"] = "keep-alive, x-hop ,X-Other-Hop",
            ["x-hop"] = "1",
            ["x-other-hop"] = "2",
            ["x-end"] = "3",
        };
        HopByHopFields.RemoveNamed(headers, headers["Connection"]);
        Assert.False(headers.ContainsKey("x-hop"));
        Assert.False(headers.ContainsKey("x-other-hop"));
        Assert.Equal("3", headers["x-end"]);
    }

    [Fact]
    public void UpgradeStaysForTheForwarderToCarryAWebSocket()
    {
        var headers = new FieldList { ["Connection"] = "Upgrade", ["Upgrade"] = "websocket" };
        HopByHopFields.RemoveNamed(headers, headers["Connection"]);
        Assert.Equal("websocket", headers["Upgrade"]);
    }

    [Fact]
    public void SeveralConnectionHeaderLinesAreAllRead()
    {
        var headers = new FieldList { ["x-a"] = "1", ["x-b"] = "2" };
        HopByHopFields.RemoveNamed(headers, new Microsoft.Extensions.Primitives.StringValues(["x-a", "close, x-b"]));
        Assert.Empty(headers);
    }
}
