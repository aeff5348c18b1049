using System.Numerics;
using System.Runtime.Intrinsics;
using System.Text.Json;

namespace MeshGuard.FlowLog;

/// <summary>
/// What the chain needs of a line, read without building a document: its seq, whether it is a signed record
/// (start or checkpoint) and where its prev hash sits. Serves the sidecar's upload reader and the control
/// plane's check of what arrives, both of which look at every line.
/// </summary>
public readonly record struct FlowLineHead(long Seq, bool IsSignedRecord, int PrevStart, int PrevLength, int PartyStart = -1, int PartyLength = 0, bool IsFlow = false)
{
    public ReadOnlySpan<byte> Prev(ReadOnlySpan<byte> line) => line.Slice(PrevStart, PrevLength);

    /// <summary>
    /// The identity whose log this line claims to be part of: the workload of a signed record, the callee of an
    /// inbound flow, the caller of an outbound one; empty where the line names none (a gap record, or a flow
    /// record missing the field or with an escaped value).
    /// </summary>
    public ReadOnlySpan<byte> LocalParty(ReadOnlySpan<byte> line) => PartyStart < 0 ? default : line.Slice(PartyStart, PartyLength);

    /// <summary>False for a line that is not a JSON object with a numeric seq (a changed or torn line).</summary>
    public static bool TryRead(ReadOnlySpan<byte> line, out FlowLineHead head) =>
        TryReadFlat(line, out head) || TryReadWithReader(line, out head);

    /// <summary>
    /// The writers' own shape, read in one pass without a JSON reader: an object of ASCII with no white space, keys
    /// without escapes, values that are unescaped strings, numbers or literals, nothing nested. Such a line reads here
    /// as the JSON reader reads it (a test holds the two together over mutated lines); false means only "not this
    /// shape", and the JSON reader decides. Every line a sidecar writes has this shape (its encoder escapes anything
    /// outside printable ASCII), and the control plane reads every line it collects, so this is what that costs.
    /// </summary>
    internal static bool TryReadFlat(ReadOnlySpan<byte> line, out FlowLineHead head)
    {
        head = default;
        if (line.Length < 2 || line[0] != (byte)'{' || line[^1] != (byte)'}')
        {
            return false;
        }
        // Without escapes every quote opens or closes a string: one vector pass finds them all (and refuses the line
        // for an escape, a control character or an octet beyond ASCII), and the walk below steps from quote to quote
        // instead of testing each octet of every string.
        Span<int> quotes = stackalloc int[MaxQuotes];
        var quoteCount = QuotePositions(line, quotes);
        if (quoteCount < 0)
        {
            return false;
        }
        quotes = quotes[..quoteCount];
        var nextQuote = 0;
        long seq = -1;
        bool signed = false, flow = false;
        bool? inbound = null;
        int prevStart = 0, prevLength = 0;
        (int Start, int Length) source = (-1, 0), dest = (-1, 0), workload = (-1, 0);
        var at = 1;
        while (true)
        {
            if (!TryString(quotes, ref nextQuote, ref at, out var keyStart, out var keyLength) || at >= line.Length || line[at++] != (byte)':' || at >= line.Length)
            {
                return false;
            }
            var key = line.Slice(keyStart, keyLength);
            var valueStart = at;
            (int Start, int Length) text = (-1, 0);
            if (line[at] == (byte)'"')
            {
                if (!TryString(quotes, ref nextQuote, ref at, out var start, out var length))
                {
                    return false;
                }
                text = (start, length);
            }
            else if (!TryNumberOrLiteral(line, ref at))
            {
                return false;
            }
            // Most keys are none of these: told apart by their length first.
            switch (key.Length)
            {
                case 3 when key.SequenceEqual("seq"u8):
                    // A seq the reader would refuse, or one it reads otherwise (a string, a fraction, an exponent).
                    if (text.Start >= 0 || !TryInteger(line[valueStart..at], out seq))
                    {
                        return false;
                    }
                    break;
                case 4 when key.SequenceEqual("kind"u8):
                    var kind = text.Start >= 0 ? line.Slice(text.Start, text.Length) : default;
                    signed = text.Start >= 0 && (kind.SequenceEqual("checkpoint"u8) || kind.SequenceEqual("start"u8));
                    flow = text.Start >= 0 && kind.SequenceEqual("flow"u8);
                    break;
                case 4 when key.SequenceEqual("prev"u8) && text.Start >= 0:
                    (prevStart, prevLength) = text;
                    break;
                case 7 when key.SequenceEqual("dest_id"u8):
                    dest = text;
                    break;
                case 8 when key.SequenceEqual("workload"u8):
                    workload = text;
                    break;
                case 9 when key.SequenceEqual("direction"u8):
                    inbound = text.Start >= 0 ? line.Slice(text.Start, text.Length).SequenceEqual("inbound"u8) : null;
                    break;
                case 9 when key.SequenceEqual("source_id"u8):
                    source = text;
                    break;
            }
            if (at >= line.Length)
            {
                return false;
            }
            if (line[at] == (byte)'}')
            {
                if (at != line.Length - 1)
                {
                    return false;
                }
                break;
            }
            if (line[at++] != (byte)',')
            {
                return false;
            }
        }
        if (seq < 0)
        {
            return false;
        }
        head = Head(seq, signed, flow, inbound, prevStart, prevLength, source, dest, workload);
        return true;
    }

    // More quotes than a flow record's keys and values hold (some 100): such a line goes to the reader.
    private const int MaxQuotes = 256;

    // Where every quote of the line is, in order; -1 for a line with an escape, a control character or an octet
    // beyond ASCII (not the flat shape), or with more quotes than the positions hold.
    private static int QuotePositions(ReadOnlySpan<byte> line, Span<int> positions)
    {
        var count = 0;
        var i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var quote = Vector256.Create((byte)'"');
            var backslash = Vector256.Create((byte)'\\');
            var space = Vector256.Create((byte)0x20);
            var beyondAscii = Vector256.Create((byte)0x80);
            for (; i + Vector256<byte>.Count <= line.Length; i += Vector256<byte>.Count)
            {
                var octets = Vector256.Create(line.Slice(i, Vector256<byte>.Count));
                if ((Vector256.Equals(octets, backslash) | Vector256.LessThan(octets, space) | Vector256.GreaterThanOrEqual(octets, beyondAscii)) != Vector256<byte>.Zero)
                {
                    return -1;
                }
                var mask = Vector256.Equals(octets, quote).ExtractMostSignificantBits();
                while (mask != 0)
                {
                    if (count == positions.Length)
                    {
                        return -1;
                    }
                    positions[count++] = i + BitOperations.TrailingZeroCount(mask);
                    mask &= mask - 1;
                }
            }
        }
        for (; i < line.Length; i++)
        {
            var octet = line[i];
            if (octet is (byte)'\\' or < 0x20 or >= 0x80)
            {
                return -1;
            }
            if (octet == (byte)'"')
            {
                if (count == positions.Length)
                {
                    return -1;
                }
                positions[count++] = i;
            }
        }
        return count;
    }

    // The string whose opening quote is at line[at], which must be the next quote found: its content's place; at goes
    // past its closing quote, the one after.
    private static bool TryString(ReadOnlySpan<int> quotes, ref int next, ref int at, out int start, out int length)
    {
        start = at + 1;
        length = 0;
        if (next + 1 >= quotes.Length || quotes[next] != at)
        {
            return false;
        }
        length = quotes[next + 1] - start;
        at = quotes[next + 1] + 1;
        next += 2;
        return true;
    }

    // A JSON number (RFC 8259's grammar exactly) or true, false, null at line[at], up to the ',' or '}' after it.
    private static bool TryNumberOrLiteral(ReadOnlySpan<byte> line, ref int at)
    {
        var rest = line[at..];
        var literal = rest.StartsWith("true"u8) || rest.StartsWith("null"u8) ? 4 : rest.StartsWith("false"u8) ? 5 : 0;
        if (literal > 0)
        {
            at += literal;
            return true;
        }
        var i = at;
        if (i < line.Length && line[i] == (byte)'-')
        {
            i++;
        }
        if (i >= line.Length || !char.IsAsciiDigit((char)line[i]))
        {
            return false;
        }
        if (line[i] == (byte)'0')
        {
            i++;
        }
        else
        {
            i = Digits(line, i);
        }
        if (i < line.Length && line[i] == (byte)'.')
        {
            var fraction = Digits(line, i + 1);
            if (fraction == i + 1)
            {
                return false;
            }
            i = fraction;
        }
        if (i < line.Length && (line[i] == (byte)'e' || line[i] == (byte)'E'))
        {
            i++;
            if (i < line.Length && (line[i] == (byte)'+' || line[i] == (byte)'-'))
            {
                i++;
            }
            var exponent = Digits(line, i);
            if (exponent == i)
            {
                return false;
            }
            i = exponent;
        }
        at = i;
        return true;
    }

    private static int Digits(ReadOnlySpan<byte> line, int i)
    {
        while (i < line.Length && char.IsAsciiDigit((char)line[i]))
        {
            i++;
        }
        return i;
    }

    // What the reader's TryGetInt64 takes: an integer without fraction or exponent that fits a long.
    private static bool TryInteger(ReadOnlySpan<byte> number, out long value) =>
        number.IndexOfAny((byte)'.', (byte)'e', (byte)'E') < 0
            & System.Buffers.Text.Utf8Parser.TryParse(number, out value, out var consumed) & consumed == number.Length;

    /// <summary>
    /// Any JSON: each value a key names is taken at the object's top level only; a nested object or array is skipped
    /// whole, so that no key inside one can stand in for the line's own (a line whose dest_id names another workload
    /// must not pass for the caller's by a dest_id hidden one level down).
    /// </summary>
    internal static bool TryReadWithReader(ReadOnlySpan<byte> line, out FlowLineHead head)
    {
        head = default;
        long seq = -1;
        var signed = false;
        var flow = false;
        bool? inbound = null;
        int prevStart = 0, prevLength = 0;
        (int Start, int Length) source = (-1, 0), dest = (-1, 0), workload = (-1, 0);
        try
        {
            var reader = new Utf8JsonReader(line);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var key = reader.ValueTextEquals("seq"u8) ? HeadKey.Seq
                    : reader.ValueTextEquals("kind"u8) ? HeadKey.Kind
                    : reader.ValueTextEquals("direction"u8) ? HeadKey.Direction
                    : reader.ValueTextEquals("source_id"u8) ? HeadKey.Source
                    : reader.ValueTextEquals("dest_id"u8) ? HeadKey.Dest
                    : reader.ValueTextEquals("workload"u8) ? HeadKey.Workload
                    : reader.ValueTextEquals("prev"u8) ? HeadKey.Prev
                    : HeadKey.Other;
                reader.Read();
                var isString = reader.TokenType == JsonTokenType.String;
                switch (key)
                {
                    case HeadKey.Seq when reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out seq):
                        return false;
                    case HeadKey.Kind:
                        signed = isString && (reader.ValueTextEquals("checkpoint"u8) || reader.ValueTextEquals("start"u8));
                        flow = isString && reader.ValueTextEquals("flow"u8);
                        break;
                    case HeadKey.Direction:
                        inbound = isString ? reader.ValueTextEquals("inbound"u8) : null;
                        break;
                    case HeadKey.Source:
                        source = StringAt(ref reader);
                        break;
                    case HeadKey.Dest:
                        dest = StringAt(ref reader);
                        break;
                    case HeadKey.Workload:
                        workload = StringAt(ref reader);
                        break;
                    case HeadKey.Prev when isString && !reader.ValueIsEscaped:
                        (prevStart, prevLength) = StringAt(ref reader);
                        break;
                }
                reader.Skip(); // a nested object or array, whole; nothing for any other token
            }
        }
        catch (JsonException)
        {
            return false;
        }
        if (seq < 0)
        {
            return false;
        }
        head = Head(seq, signed, flow, inbound, prevStart, prevLength, source, dest, workload);
        return true;
    }

    private static FlowLineHead Head(long seq, bool signed, bool flow, bool? inbound, int prevStart, int prevLength,
        (int Start, int Length) source, (int Start, int Length) dest, (int Start, int Length) workload)
    {
        (int Start, int Length) party = signed ? workload : flow && inbound is { } i ? (i ? dest : source) : (-1, 0);
        return new FlowLineHead(seq, signed, prevStart, prevLength, party.Start, party.Length, flow);
    }

    // Where the unescaped string value the reader is on sits in the line; (-1, 0) for anything else.
    private static (int Start, int Length) StringAt(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped ? ((int)reader.TokenStartIndex + 1, reader.ValueSpan.Length) : (-1, 0);

    private enum HeadKey
    {
        Other,
        Seq,
        Kind,
        Direction,
        Source,
        Dest,
        Workload,
        Prev,
    }
}
