using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MeshGuard.FlowLog;

/// <summary>
/// Writes a flow record as one JSON line of UTF-8, straight into a buffer: the writer's per-record work.
/// Keys and fixed values are byte literals; a string value that is printable ASCII with no quote or
/// backslash (ids, addresses, methods, nearly every path) is narrowed in one vectorized copy, and anything
/// else goes through System.Text.Json's escaping, so the line is always valid JSON. The line's room is taken
/// from the buffer once, for the longest the record could spell, and filled through a cursor: asked for room
/// field by field, the buffer's interface calls and bounds checks were a third of the encoder's time in the
/// NativeAOT sidecar.
/// </summary>
public static class FlowLineEncoder
{
    // Every key, its punctuation and every number, date, hash and id a line can hold, with room to spare (a line
    // with every field and no string value is about 520 octets).
    private const int FixedBytes = 1024;

    // JSON spells a UTF-16 unit in at most six octets (\uXXXX); a lone surrogate becomes U+FFFD, also within six.
    private const int EscapedBytesPerChar = 6;

    private static readonly SearchValues<char> NeedsNoEscape = SearchValues.Create(
        " !#$%()*,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    public static void Encode(IBufferWriter<byte> line, in FlowRecord r, long seq, ReadOnlySpan<byte> prev)
    {
        var cursor = new Cursor(line.GetSpan(MostBytes(r, prev)));
        cursor.Raw("{\"kind\":\"flow\",\"time\":\""u8);
        cursor.Time(r.Time);
        cursor.Raw("\",\"duration_ms\":"u8);
        cursor.Milliseconds(r.DurationMs);
        cursor.Raw(r.Direction == FlowDirection.Inbound ? ",\"direction\":\"inbound\""u8 : ",\"direction\":\"outbound\""u8);
        cursor.Optional(",\"request_id\":"u8, r.RequestId);
        if (r.RequestId is null && r.MadeRequestId != 0)
        {
            cursor.Raw(",\"request_id\":"u8);
            cursor.Hex(r.MadeRequestId);
        }
        cursor.Optional(",\"source_id\":"u8, r.SourceId);
        cursor.Optional(",\"source_addr\":"u8, r.SourceAddr);
        cursor.Optional(",\"dest_id\":"u8, r.DestId);
        cursor.Optional(",\"dest_service\":"u8, r.DestService);
        cursor.Optional(",\"dest_addr\":"u8, r.DestAddr);
        cursor.Raw(",\"dest_port\":"u8);
        cursor.Number(r.DestPort);
        cursor.Optional(",\"protocol\":"u8, r.Protocol);
        cursor.Optional(",\"method\":"u8, r.Method);
        cursor.Optional(",\"path\":"u8, r.Path);
        cursor.Raw(",\"status\":"u8);
        cursor.Number(r.Status);
        cursor.Optional(",\"decision\":"u8, r.Decision);
        cursor.Optional(",\"audit_decision\":"u8, r.AuditDecision);
        cursor.Optional(",\"audit_policy\":"u8, r.AuditPolicy);
        cursor.Optional(",\"audit_rule\":"u8, r.AuditRule);
        cursor.Optional(",\"policy\":"u8, r.Policy);
        cursor.Optional(",\"rule\":"u8, r.Rule);
        cursor.Raw(",\"bytes_in\":"u8);
        cursor.Number(r.BytesIn);
        cursor.Raw(",\"bytes_out\":"u8);
        cursor.Number(r.BytesOut);
        if (r.TraceId is { } trace)
        {
            // A whole traceparent (00-<trace id>-<span id>-<flags>) is stored as it came; the id is its second field.
            cursor.Raw(",\"trace_id\":"u8);
            cursor.String(FlowRecord.TraceIdOf(trace));
        }
        else if (r.MadeTraceId != 0)
        {
            cursor.Raw(",\"trace_id\":"u8);
            cursor.Hex(r.MadeTraceId);
        }
        cursor.Optional(",\"tls_version\":"u8, r.TlsVersion);
        cursor.Raw(",\"seq\":"u8);
        cursor.Number(seq);
        cursor.Raw(",\"prev\":\""u8);
        cursor.Raw(prev);
        cursor.Raw("\"}"u8);
        line.Advance(cursor.Written);
    }

    /// <summary>The most octets <paramref name="r"/> can take as a line: the fixed part and every string escaped at its longest.</summary>
    private static int MostBytes(in FlowRecord r, ReadOnlySpan<byte> prev)
    {
        var chars = Length(r.RequestId) + Length(r.SourceId) + Length(r.SourceAddr) + Length(r.DestId) + Length(r.DestService) +
            Length(r.DestAddr) + Length(r.Protocol) + Length(r.Method) + Length(r.Path) + Length(r.Decision) + Length(r.AuditDecision) +
            Length(r.AuditPolicy) + Length(r.AuditRule) + Length(r.Policy) + Length(r.Rule) + Length(r.TraceId) + Length(r.TlsVersion);
        return (int)Math.Min(int.MaxValue, FixedBytes + prev.Length + (chars * EscapedBytesPerChar));

        static long Length(string? value) => value?.Length ?? 0;
    }

    private static ReadOnlySpan<byte> Escape(ReadOnlySpan<char> value)
    {
        try
        {
            return JsonEncodedText.Encode(value).EncodedUtf8Bytes;
        }
        catch (ArgumentException)
        {
            // A lone surrogate cannot be JSON: it is recorded as U+FFFD rather than losing the record.
            return JsonEncodedText.Encode(Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(value.ToString()))).EncodedUtf8Bytes;
        }
    }

    /// <summary>The line's room and how much of it is written; every write fits, since the room is the line's longest.</summary>
    private ref struct Cursor(Span<byte> room)
    {
        private readonly Span<byte> _room = room;

        public int Written { get; private set; }

        private readonly Span<byte> Free => _room[Written..];

        public void Raw(ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(Free);
            Written += bytes.Length;
        }

        public void Number<T>(T value) where T : IUtf8SpanFormattable
        {
            value.TryFormat(Free, out var n, default, CultureInfo.InvariantCulture);
            Written += n;
        }

        // "O" of a UTC time is RFC 3339 with seven fraction digits and Z, and far cheaper than a custom pattern.
        public void Time(DateTimeOffset time)
        {
            time.UtcDateTime.TryFormat(Free, out var n, "O", CultureInfo.InvariantCulture);
            Written += n;
        }

        /// <summary>A made id as a JSON string: its 32 hex digits need no escaping.</summary>
        public void Hex(UInt128 id)
        {
            var free = Free;
            free[0] = (byte)'"';
            FlowRecord.WriteHex(id, free[1..33]);
            free[33] = (byte)'"';
            Written += 34;
        }

        /// <summary>Milliseconds to the microsecond, as the shortest decimal (4.903, 4.9, 5): integer arithmetic, not double formatting.</summary>
        public void Milliseconds(double milliseconds)
        {
            var micros = (long)Math.Round(Math.Max(0, milliseconds) * 1000);
            Number(micros / 1000);
            var fraction = (int)(micros % 1000);
            if (fraction == 0)
            {
                return;
            }
            var digits = 3;
            while (fraction % 10 == 0)
            {
                fraction /= 10;
                digits--;
            }
            var free = Free;
            free[0] = (byte)'.';
            fraction.TryFormat(free[1..], out _, digits == 3 ? "D3" : digits == 2 ? "D2" : "D1", CultureInfo.InvariantCulture);
            Written += digits + 1;
        }

        public void Optional(ReadOnlySpan<byte> key, string? value)
        {
            if (value is not null)
            {
                Raw(key);
                String(value);
            }
        }

        public void String(ReadOnlySpan<char> value)
        {
            if (!value.ContainsAnyExcept(NeedsNoEscape))
            {
                var free = Free;
                free[0] = (byte)'"';
                Ascii.FromUtf16(value, free[1..], out var n);
                free[n + 1] = (byte)'"';
                Written += n + 2;
                return;
            }
            // Rare: quotes, backslashes, control or non-ASCII characters. The same escaping as any JSON the log holds.
            Raw("\""u8);
            Raw(Escape(value));
            Raw("\""u8);
        }
    }
}
