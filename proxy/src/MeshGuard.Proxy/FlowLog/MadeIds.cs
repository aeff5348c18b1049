using System.Buffers.Binary;
using MeshGuard.FlowLog;

namespace MeshGuard.Proxy.FlowLog;

/// <summary>
/// The request id and W3C trace context the caller's sidecar makes for a request that brought none, kept as numbers:
/// the hand-written leg writes their text straight into the header block and the flow writer spells them when it
/// writes the record, so the usual request makes no strings for them. A path that forwards the server's header
/// collection as it is (YARP's, traffic leaving the mesh) has them set there as text first (<see cref="SetOn"/>).
/// A zero id is one not made (the request brought its own).
/// </summary>
internal readonly record struct MadeIds(UInt128 RequestId, UInt128 TraceId, ulong SpanId)
{
    public const int TraceParentLength = FlowRecord.TraceparentLength;

    public bool Any => RequestId != 0 || TraceId != 0;

    /// <summary>Unique, not secret: the shared fast generator, not the operating system's (a native call per request).</summary>
    public static MadeIds New(bool requestId, bool trace)
    {
        if (!requestId && !trace)
        {
            return default;
        }
        Span<byte> random = stackalloc byte[40];
        Random.Shared.NextBytes(random);
        // All-zero ids are invalid in W3C trace context, and zero here means "none made".
        return new MadeIds(
            requestId ? NonZero(BinaryPrimitives.ReadUInt128LittleEndian(random)) : 0,
            trace ? NonZero(BinaryPrimitives.ReadUInt128LittleEndian(random[16..])) : 0,
            trace ? Math.Max(1UL, BinaryPrimitives.ReadUInt64LittleEndian(random[32..])) : 0);

        static UInt128 NonZero(UInt128 id) => id == 0 ? 1 : id;
    }

    /// <summary>The request id's header value: 32 lower-case hex digits.</summary>
    public void WriteRequestId(Span<byte> destination) => FlowRecord.WriteHex(RequestId, destination);

    /// <summary>A sampled traceparent: 00-&lt;trace id&gt;-&lt;span id&gt;-01, 55 octets.</summary>
    public void WriteTraceParent(Span<byte> destination)
    {
        "00-"u8.CopyTo(destination);
        FlowRecord.WriteHex(TraceId, destination[3..35]);
        destination[35] = (byte)'-';
        Span<byte> span = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(span, SpanId);
        LowerHex.Write(span, destination[36..52]);
        "-01"u8.CopyTo(destination[52..]);
    }

    /// <summary>For the paths that forward the header collection itself: the made ids as header text.</summary>
    public void SetOn(IHeaderDictionary headers)
    {
        if (RequestId != 0)
        {
            headers[FlowFields.RequestIdHeader] = FlowRecord.HexText(RequestId);
        }
        if (TraceId != 0)
        {
            Span<byte> text = stackalloc byte[TraceParentLength];
            WriteTraceParent(text);
            headers[FlowFields.TraceParentHeader] = System.Text.Encoding.ASCII.GetString(text);
        }
    }
}
