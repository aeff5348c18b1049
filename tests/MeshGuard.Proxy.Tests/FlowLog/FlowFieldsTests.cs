using System.Buffers;
using System.Text;
using MeshGuard.FlowLog;
using MeshGuard.Proxy.FlowLog;
using Microsoft.AspNetCore.Http;

namespace MeshGuard.Proxy.Tests.FlowLog;

/// <summary>The request id and trace context the caller's sidecar puts on a call, and how its flow record spells them.</summary>
public sealed class FlowFieldsTests
{
    private static string TraceParentOf(MadeIds ids)
    {
        Span<byte> text = stackalloc byte[MadeIds.TraceParentLength];
        ids.WriteTraceParent(text);
        return Encoding.ASCII.GetString(text);
    }

    private static string RequestIdOf(MadeIds ids)
    {
        Span<byte> text = stackalloc byte[32];
        ids.WriteRequestId(text);
        return Encoding.ASCII.GetString(text);
    }

    [Fact]
    public void AMadeTraceParentIsWellFormedW3CTraceContextAndFreshEachTime()
    {
        var seen = new HashSet<string>();
        for (var i = 0; i < 1000; i++)
        {
            var traceParent = TraceParentOf(MadeIds.New(requestId: false, trace: true));
            Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-01$", traceParent);
            Assert.DoesNotMatch("^00-0{32}-|-0{16}-01$", traceParent);
            Assert.True(seen.Add(traceParent));
        }
    }

    [Fact]
    public void MadeIdsAreSpelledMostSignificantDigitFirst()
    {
        var trace = UInt128.Parse("0af7651916cd43dd8448eb211c80319c", System.Globalization.NumberStyles.HexNumber, null);
        var ids = new MadeIds(RequestId: 0x2a, TraceId: trace, SpanId: 0xb7ad6b7169203331);
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", FlowRecord.HexText(trace));
        Assert.Equal("0000000000000000000000000000002a", RequestIdOf(ids));
        Assert.Equal("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceParentOf(ids));
    }

    [Fact]
    public void OnlyWhatTheCallLacksIsMade()
    {
        var context = new DefaultHttpContext();
        Assert.Null(FlowFields.CallersTraceParent(context.Request));
        Assert.Null(FlowFields.CallersRequestId(context.Request));

        context.Request.Headers[FlowFields.RequestIdHeader] = "app-chosen-id";
        context.Request.Headers[FlowFields.TraceParentHeader] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        Assert.Equal("app-chosen-id", FlowFields.CallersRequestId(context.Request));
        Assert.Equal("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", FlowFields.CallersTraceParent(context.Request));

        var none = MadeIds.New(requestId: false, trace: false);
        Assert.False(none.Any);
        var onlyId = MadeIds.New(requestId: true, trace: false);
        Assert.NotEqual(UInt128.Zero, onlyId.RequestId);
        Assert.Equal(UInt128.Zero, onlyId.TraceId);
    }

    [Fact]
    public void MadeIdsSetAsTextReplaceWhatTheAppSentUnusable()
    {
        var context = new DefaultHttpContext();
        context.Request.Headers[FlowFields.RequestIdHeader] = new string('x', 200);
        context.Request.Headers[FlowFields.TraceParentHeader] = "not-a-traceparent";
        Assert.Null(FlowFields.CallersRequestId(context.Request));
        Assert.Null(FlowFields.CallersTraceParent(context.Request));

        var made = MadeIds.New(requestId: true, trace: true);
        FlowFields.RemoveReplaced(context.Request.Headers, made);
        Assert.False(context.Request.Headers.ContainsKey(FlowFields.RequestIdHeader));
        Assert.False(context.Request.Headers.ContainsKey(FlowFields.TraceParentHeader));

        made.SetOn(context.Request.Headers);
        Assert.Equal(RequestIdOf(made), context.Request.Headers[FlowFields.RequestIdHeader].ToString());
        Assert.Equal(TraceParentOf(made), FlowFields.TraceParent(context.Request));
    }

    [Fact]
    public void AFlowRecordSpellsMadeIdsAsTheHeadersCarriedThem()
    {
        var made = MadeIds.New(requestId: true, trace: true);
        var line = new ArrayBufferWriter<byte>();
        FlowLineEncoder.Encode(line, new FlowRecord { Direction = FlowDirection.Outbound, MadeRequestId = made.RequestId, MadeTraceId = made.TraceId }, 1, "00"u8);
        var text = Encoding.UTF8.GetString(line.WrittenSpan);

        Assert.Contains($"\"request_id\":\"{RequestIdOf(made)}\"", text, StringComparison.Ordinal);
        Assert.Contains($"\"trace_id\":\"{TraceParentOf(made)[3..35]}\"", text, StringComparison.Ordinal);
        using var parsed = System.Text.Json.JsonDocument.Parse(text);
        Assert.Equal(RequestIdOf(made), parsed.RootElement.GetProperty("request_id").GetString());

        // A record of ids the app brought keeps them as they came.
        var line2 = new ArrayBufferWriter<byte>();
        FlowLineEncoder.Encode(line2, new FlowRecord { Direction = FlowDirection.Outbound, RequestId = "app-id", TraceId = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }, 2, "00"u8);
        var text2 = Encoding.UTF8.GetString(line2.WrittenSpan);
        Assert.Contains("\"request_id\":\"app-id\"", text2, StringComparison.Ordinal);
        Assert.Contains("\"trace_id\":\"0af7651916cd43dd8448eb211c80319c\"", text2, StringComparison.Ordinal);
    }
}
