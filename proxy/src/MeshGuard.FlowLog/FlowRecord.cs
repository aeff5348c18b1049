namespace MeshGuard.FlowLog;

/// <summary>
/// One request or connection as a sidecar saw it. A value type of references the request already holds
/// and numbers, so enqueueing one allocates nothing; <c>seq</c> and <c>prev</c> are added by the writer.
/// </summary>
public readonly record struct FlowRecord
{
    public DateTimeOffset Time { get; init; }
    public double DurationMs { get; init; }
    public FlowDirection Direction { get; init; }
    public string? RequestId { get; init; }
    public string? SourceId { get; init; }
    public string? SourceAddr { get; init; }
    public string? DestId { get; init; }
    public string? DestService { get; init; }

    /// <summary>The address a connection was headed for, where no mesh identity names it (traffic passed through out of the mesh).</summary>
    public string? DestAddr { get; init; }
    public int DestPort { get; init; }
    public string? Protocol { get; init; }
    public string? Method { get; init; }
    public string? Path { get; init; }
    public int Status { get; init; }
    public string? Decision { get; init; }
    public string? AuditDecision { get; init; }
    public string? AuditPolicy { get; init; }
    public string? AuditRule { get; init; }
    public string? Policy { get; init; }
    public string? Rule { get; init; }
    public long BytesIn { get; init; }
    public long BytesOut { get; init; }
    /// <summary>The W3C trace id, or the whole traceparent header it is read from when the record is written.</summary>
    public string? TraceId { get; init; }

    /// <summary>
    /// A request id the caller's sidecar made (16 random octets), recorded where <see cref="RequestId"/> is null: the
    /// request path keeps it as a number, and the writer spells it as the header carried it (32 lower-case hex digits).
    /// </summary>
    public UInt128 MadeRequestId { get; init; }

    /// <summary>A trace id the caller's sidecar made, recorded where <see cref="TraceId"/> is null (as <see cref="MadeRequestId"/>).</summary>
    public UInt128 MadeTraceId { get; init; }
    public string? TlsVersion { get; init; }

    /// <summary>The length of a whole W3C traceparent: 00-&lt;trace id&gt;-&lt;span id&gt;-&lt;flags&gt;.</summary>
    public const int TraceparentLength = 55;

    /// <summary>The trace id that <paramref name="trace"/> (a <see cref="TraceId"/>) holds: a whole traceparent's second field, or the value itself.</summary>
    public static ReadOnlySpan<char> TraceIdOf(string trace) => trace.Length == TraceparentLength ? trace.AsSpan(3, 32) : trace.AsSpan();

    /// <summary>An id made as a number, spelled as on the wire: 32 lower-case hex digits, most significant first, in ASCII.</summary>
    public static void WriteHex(UInt128 id, Span<byte> destination)
    {
        Span<byte> octets = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(octets, id);
        LowerHex.Write(octets, destination);
    }

    /// <summary>The same as text (where a header collection or an exporter needs a string).</summary>
    public static string HexText(UInt128 id)
    {
        Span<byte> text = stackalloc byte[32];
        WriteHex(id, text);
        return System.Text.Encoding.ASCII.GetString(text);
    }
}

public enum FlowDirection : byte
{
    Inbound,
    Outbound,
}
