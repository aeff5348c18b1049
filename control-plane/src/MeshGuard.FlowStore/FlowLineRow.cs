using System.Buffers;
using System.Buffers.Binary;
using System.Buffers.Text;
using System.Globalization;
using System.Text.Json;
using System.Text.Unicode;

namespace MeshGuard.FlowStore;

/// <summary>
/// One line as a row of PostgreSQL's binary COPY format, written straight from the line's bytes: the verbatim line
/// and its hash, and beside them what a reviewer filters on (when, what kind of record, who called whom, which
/// service, the decision with its policy and rule, the request and its answer). One JSON pass; a string field is
/// copied as it stands in the line (unescaped only when it holds escapes), so no string is made per field. A field
/// the line lacks (a checkpoint has no caller), holds as another JSON type, or that PostgreSQL text cannot hold
/// (a NUL, bytes that are not UTF-8) is NULL: the line itself is kept whole either way.
/// </summary>
internal static class FlowLineRow
{
    /// <summary>The columns, in the order the rows are written.</summary>
    public const string Columns = "received, workload, chain, seq, time, kind, direction, source_id, dest_id, dest_service, decision, policy, rule, method, path, status, request_id, hash, line";

    private const short ColumnCount = 19;

    // The text fields of a line, by index into a row's field table.
    private const int Kind = 0, Direction = 1, Source = 2, Dest = 3, Service = 4, Decision = 5, Policy = 6, Rule = 7, Method = 8, Path = 9, RequestId = 10, TextFields = 11;

    // PostgreSQL's epoch for timestamps: 2000-01-01 UTC, in microseconds.
    private static readonly long EpochTicks = new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc).Ticks;

    /// <summary>The stream's header: signature, flags and header-extension length.</summary>
    public static ReadOnlySpan<byte> Header => [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xff, (byte)'\r', (byte)'\n', 0, 0, 0, 0, 0, 0, 0, 0, 0];

    /// <summary>The stream's end.</summary>
    public static ReadOnlySpan<byte> Trailer => [0xff, 0xff];

    /// <summary>Where a text field's bytes are: in the line, in the scratch buffer (unescaped), or nowhere (NULL).</summary>
    private struct Field
    {
        public int Start;
        public int Length;
        public byte Where; // 0: NULL, 1: the line, 2: scratch
    }

    public static long Microseconds(DateTimeOffset time) => (time.UtcTicks - EpochTicks) / TimeSpan.TicksPerMicrosecond;

    /// <summary>The UTC time of <paramref name="micros"/> since PostgreSQL's epoch.</summary>
    public static DateTime Time(long micros) => new(EpochTicks + (micros * TimeSpan.TicksPerMicrosecond), DateTimeKind.Utc);

    /// <summary>
    /// Appends the row of <paramref name="line"/> to <paramref name="rows"/>; <paramref name="scratch"/> holds unescaped
    /// fields meanwhile. An inbound flow record with a callee and a time is counted in <paramref name="edges"/>, from
    /// the very values its row holds.
    /// </summary>
    public static void Write(IBufferWriter<byte> rows, long receivedMicros, ReadOnlySpan<byte> workload, int chain, ReadOnlySpan<byte> line, ReadOnlySpan<byte> hash,
        ArrayBufferWriter<byte> scratch, EdgeCounts? edges = null)
    {
        Span<Field> text = stackalloc Field[TextFields];
        text.Clear();
        scratch.ResetWrittenCount();
        long seq = -1;
        long? time = null;
        int? status = null;
        var reader = new Utf8JsonReader(line);
        try
        {
            if (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var field = FieldOf(ref reader);
                    reader.Read();
                    if (field >= 0)
                    {
                        text[field] = String(ref reader, scratch);
                    }
                    else if (field == SeqField)
                    {
                        seq = reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var n) ? n : -1;
                    }
                    else if (field == StatusField)
                    {
                        status = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var s) ? s : null;
                    }
                    else if (field == TimeField)
                    {
                        time = reader.TokenType == JsonTokenType.String ? Time(ref reader) : null;
                    }
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            // The segment passed the chain check, so this does not happen; the fields read so far stand.
        }

        var row = rows.GetSpan(14);
        BinaryPrimitives.WriteInt16BigEndian(row, ColumnCount);
        var at = 2;
        at += Int64(row[at..], receivedMicros);
        rows.Advance(at);
        Bytes(rows, workload);
        Int32(rows, chain);
        Int64(rows, seq);
        NullableInt64(rows, time);
        Text(rows, text[Kind], line, scratch, orEmpty: true);
        for (var f = Direction; f <= Path; f++)
        {
            Text(rows, text[f], line, scratch, orEmpty: false);
        }
        if (status is { } code)
        {
            Int32(rows, code);
        }
        else
        {
            Null(rows);
        }
        Text(rows, text[RequestId], line, scratch, orEmpty: false);
        Bytes(rows, hash);
        Bytes(rows, line);
        if (edges is not null && time is { } recorded && Value(text[Kind], line, scratch, out var kind) && kind.SequenceEqual("flow"u8)
            && Value(text[Direction], line, scratch, out var direction) && direction.SequenceEqual("inbound"u8)
            && Value(text[Dest], line, scratch, out var dest))
        {
            // As the edge tables have always counted: no caller is the empty caller, no decision a deny.
            edges.Add(recorded, Value(text[Source], line, scratch, out var source) ? source : [], dest,
                Value(text[Decision], line, scratch, out var decision) ? decision : "deny"u8,
                Value(text[Policy], line, scratch, out var policy) ? policy : [], Value(text[Rule], line, scratch, out var rule) ? rule : []);
        }
    }

    /// <summary>A text field's bytes as its column holds them: false where the column is NULL (missing, not a string, a NUL, not UTF-8).</summary>
    private static bool Value(Field field, ReadOnlySpan<byte> line, ArrayBufferWriter<byte> scratch, out ReadOnlySpan<byte> value)
    {
        value = field.Where switch
        {
            1 => line.Slice(field.Start, field.Length),
            2 => scratch.WrittenSpan.Slice(field.Start, field.Length),
            _ => default,
        };
        return field.Where != 0 && !value.Contains((byte)0) && Utf8.IsValid(value);
    }

    private const int SeqField = -2, StatusField = -3, TimeField = -4, Other = -1;

    private static int FieldOf(ref Utf8JsonReader reader) =>
        reader.ValueTextEquals("seq"u8) ? SeqField
        : reader.ValueTextEquals("time"u8) ? TimeField
        : reader.ValueTextEquals("kind"u8) ? Kind
        : reader.ValueTextEquals("direction"u8) ? Direction
        : reader.ValueTextEquals("source_id"u8) ? Source
        : reader.ValueTextEquals("dest_id"u8) ? Dest
        : reader.ValueTextEquals("dest_service"u8) ? Service
        : reader.ValueTextEquals("decision"u8) ? Decision
        : reader.ValueTextEquals("policy"u8) ? Policy
        : reader.ValueTextEquals("rule"u8) ? Rule
        : reader.ValueTextEquals("method"u8) ? Method
        : reader.ValueTextEquals("path"u8) ? Path
        : reader.ValueTextEquals("request_id"u8) ? RequestId
        : reader.ValueTextEquals("status"u8) ? StatusField
        : Other;

    private static Field String(ref Utf8JsonReader reader, ArrayBufferWriter<byte> scratch)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            return default;
        }
        if (!reader.ValueIsEscaped)
        {
            return new Field { Start = (int)reader.TokenStartIndex + 1, Length = reader.ValueSpan.Length, Where = 1 };
        }
        try
        {
            // Unescaping never makes a value longer.
            var start = scratch.WrittenCount;
            var written = reader.CopyString(scratch.GetSpan(reader.ValueSpan.Length));
            scratch.Advance(written);
            return new Field { Start = start, Length = written, Where = 2 };
        }
        catch (InvalidOperationException)
        {
            return default; // an escape that does not decode to UTF-8 (a lone surrogate)
        }
    }

    private static long? Time(ref Utf8JsonReader reader)
    {
        // The sidecar writes round-trip ("O") UTC times; anything else a line holds is parsed the slow way.
        if (!reader.ValueIsEscaped && Utf8Parser.TryParse(reader.ValueSpan, out DateTimeOffset fast, out var used, 'O') && used == reader.ValueSpan.Length)
        {
            return Microseconds(fast);
        }
        return DateTimeOffset.TryParse(reader.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed) ? Microseconds(parsed) : null;
    }

    private static void Text(IBufferWriter<byte> rows, Field field, ReadOnlySpan<byte> line, ArrayBufferWriter<byte> scratch, bool orEmpty)
    {
        if (!Value(field, line, scratch, out var value))
        {
            if (orEmpty)
            {
                Bytes(rows, []);
            }
            else
            {
                Null(rows);
            }
            return;
        }
        Bytes(rows, value);
    }

    private static void Bytes(IBufferWriter<byte> rows, ReadOnlySpan<byte> value)
    {
        var span = rows.GetSpan(4 + value.Length);
        BinaryPrimitives.WriteInt32BigEndian(span, value.Length);
        value.CopyTo(span[4..]);
        rows.Advance(4 + value.Length);
    }

    private static void Null(IBufferWriter<byte> rows)
    {
        BinaryPrimitives.WriteInt32BigEndian(rows.GetSpan(4), -1);
        rows.Advance(4);
    }

    private static void Int32(IBufferWriter<byte> rows, int value)
    {
        var span = rows.GetSpan(8);
        BinaryPrimitives.WriteInt32BigEndian(span, 4);
        BinaryPrimitives.WriteInt32BigEndian(span[4..], value);
        rows.Advance(8);
    }

    private static void Int64(IBufferWriter<byte> rows, long value) => rows.Advance(Int64(rows.GetSpan(12), value));

    private static int Int64(Span<byte> span, long value)
    {
        BinaryPrimitives.WriteInt32BigEndian(span, 8);
        BinaryPrimitives.WriteInt64BigEndian(span[4..], value);
        return 12;
    }

    private static void NullableInt64(IBufferWriter<byte> rows, long? value)
    {
        if (value is { } v)
        {
            Int64(rows, v);
        }
        else
        {
            Null(rows);
        }
    }
}
