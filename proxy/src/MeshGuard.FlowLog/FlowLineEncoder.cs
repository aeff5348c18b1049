using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MeshGuard.FlowLog;

/// <summary>
/// Writes a flow record as one JSON line of UTF-8, straight into a buffer: the writer's per-record work.
/// Keys and fixed values are byte literals; a string value that is printable ASCII with no quote or
/// backslash (ids, addresses, methods, nearly every path) is narrowed in one vectorized copy, and anything
/// else goes through System.Text.Json's escaping, so the line is always valid JSON.
/// </summary>
public static class FlowLineEncoder
{
    // Longest fixed key with its punctuation plus a number or date is far below this.
    private const int FieldReserve = 64;

    private static readonly SearchValues<char> NeedsNoEscape = SearchValues.Create(
        " !#$%()*,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    public static void Encode(IBufferWriter<byte> line, in FlowRecord r, long seq, ReadOnlySpan<byte> prev)
    {
        Raw(line, "{\"kind\":\"flow\",\"time\":\""u8);
        var span = line.GetSpan(FieldReserve);
        // "O" of a UTC time is RFC 3339 with seven fraction digits and Z, and far cheaper than a custom pattern.
        r.Time.UtcDateTime.TryFormat(span, out var n, "O", CultureInfo.InvariantCulture);
        line.Advance(n);
        Raw(line, "\",\"duration_ms\":"u8);
        Milliseconds(line, r.DurationMs);
        Raw(line, r.Direction == FlowDirection.Inbound ? ",\"direction\":\"inbound\""u8 : ",\"direction\":\"outbound\""u8);
        Optional(line, ",\"request_id\":"u8, r.RequestId);
        if (r.RequestId is null && r.MadeRequestId != 0)
        {
            Raw(line, ",\"request_id\":"u8);
            Hex(line, r.MadeRequestId);
        }
        Optional(line, ",\"source_id\":"u8, r.SourceId);
        Optional(line, ",\"source_addr\":"u8, r.SourceAddr);
        Optional(line, ",\"dest_id\":"u8, r.DestId);
        Optional(line, ",\"dest_service\":"u8, r.DestService);
        Optional(line, ",\"dest_addr\":"u8, r.DestAddr);
        Raw(line, ",\"dest_port\":"u8);
        Number(line, r.DestPort);
        Optional(line, ",\"protocol\":"u8, r.Protocol);
        Optional(line, ",\"method\":"u8, r.Method);
        Optional(line, ",\"path\":"u8, r.Path);
        Raw(line, ",\"status\":"u8);
        Number(line, r.Status);
        Optional(line, ",\"decision\":"u8, r.Decision);
        Optional(line, ",\"audit_decision\":"u8, r.AuditDecision);
        Optional(line, ",\"audit_policy\":"u8, r.AuditPolicy);
        Optional(line, ",\"audit_rule\":"u8, r.AuditRule);
        Optional(line, ",\"policy\":"u8, r.Policy);
        Optional(line, ",\"rule\":"u8, r.Rule);
        Raw(line, ",\"bytes_in\":"u8);
        Number(line, r.BytesIn);
        Raw(line, ",\"bytes_out\":"u8);
        Number(line, r.BytesOut);
        if (r.TraceId is { } trace)
        {
            // A whole traceparent (00-<trace id>-<span id>-<flags>) is stored as it came; the id is its second field.
            Raw(line, ",\"trace_id\":"u8);
            String(line, FlowRecord.TraceIdOf(trace));
        }
        else if (r.MadeTraceId != 0)
        {
            Raw(line, ",\"trace_id\":"u8);
            Hex(line, r.MadeTraceId);
        }
        Optional(line, ",\"tls_version\":"u8, r.TlsVersion);
        Raw(line, ",\"seq\":"u8);
        Number(line, seq);
        Raw(line, ",\"prev\":\""u8);
        Raw(line, prev);
        Raw(line, "\"}"u8);
    }

    /// <summary>A made id as a JSON string: its 32 hex digits need no escaping.</summary>
    private static void Hex(IBufferWriter<byte> line, UInt128 id)
    {
        var span = line.GetSpan(34);
        span[0] = (byte)'"';
        FlowRecord.WriteHex(id, span[1..33]);
        span[33] = (byte)'"';
        line.Advance(34);
    }

    private static void Raw(IBufferWriter<byte> line, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(line.GetSpan(bytes.Length));
        line.Advance(bytes.Length);
    }

    private static void Number<T>(IBufferWriter<byte> line, T value) where T : IUtf8SpanFormattable
    {
        value.TryFormat(line.GetSpan(FieldReserve), out var n, default, CultureInfo.InvariantCulture);
        line.Advance(n);
    }

    /// <summary>Milliseconds to the microsecond, as the shortest decimal (4.903, 4.9, 5): integer arithmetic, not double formatting.</summary>
    private static void Milliseconds(IBufferWriter<byte> line, double milliseconds)
    {
        var micros = (long)Math.Round(Math.Max(0, milliseconds) * 1000);
        Number(line, micros / 1000);
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
        var span = line.GetSpan(4);
        span[0] = (byte)'.';
        fraction.TryFormat(span[1..], out _, digits == 3 ? "D3" : digits == 2 ? "D2" : "D1", CultureInfo.InvariantCulture);
        line.Advance(digits + 1);
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

    private static void Optional(IBufferWriter<byte> line, ReadOnlySpan<byte> key, string? value)
    {
        if (value is not null)
        {
            Raw(line, key);
            String(line, value);
        }
    }

    private static void String(IBufferWriter<byte> line, ReadOnlySpan<char> value)
    {
        if (!value.ContainsAnyExcept(NeedsNoEscape))
        {
            var span = line.GetSpan(value.Length + 2);
            span[0] = (byte)'"';
            Ascii.FromUtf16(value, span[1..], out var n);
            span[n + 1] = (byte)'"';
            line.Advance(n + 2);
            return;
        }
        // Rare: quotes, backslashes, control or non-ASCII characters. The same escaping as any JSON the log holds.
        Raw(line, "\""u8);
        Raw(line, Escape(value));
        Raw(line, "\""u8);
    }
}
