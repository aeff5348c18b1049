using MeshGuard.Proxy.FlowLog;
using Microsoft.AspNetCore.Http;

namespace MeshGuard.Proxy.Tests.FlowLog;

/// <summary>The request id and trace context the caller's sidecar puts on a call.</summary>
public sealed class FlowFieldsTests
{
    [Fact]
    public void ANewTraceParentIsWellFormedW3CTraceContextAndFreshEachTime()
    {
        var seen = new HashSet<string>();
        for (var i = 0; i < 1000; i++)
        {
            var traceParent = FlowFields.NewTraceParent();
            Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-01$", traceParent);
            Assert.True(seen.Add(traceParent));
        }
    }

    [Fact]
    public void ACallWithoutTraceContextGetsOneThatTheCalleeSideReadsBack()
    {
        var context = new DefaultHttpContext();
        var set = FlowFields.EnsureTraceParent(context.Request);
        Assert.Equal(set, FlowFields.TraceParent(context.Request));
        Assert.Equal(set, FlowFields.EnsureTraceParent(context.Request)); // kept, not replaced
    }

    [Fact]
    public void ARequestIdTheAppSentIsKeptAndAMissingOneIsCreated()
    {
        var context = new DefaultHttpContext();
        context.Request.Headers[FlowFields.RequestIdHeader] = "app-chosen-id";
        Assert.Equal("app-chosen-id", FlowFields.EnsureRequestId(context.Request));

        var bare = new DefaultHttpContext();
        var created = FlowFields.EnsureRequestId(bare.Request);
        Assert.Matches("^[0-9a-f]{32}$", created);
        Assert.Equal(created, FlowFields.RequestId(bare.Request));
    }
}
