using System.Buffers;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>Whether an encoded field enters the dynamic table.</summary>
internal enum HpackIndexing
{
    /// <summary>Added to the table: a field that repeats across requests (host, user agent, content type).</summary>
    Index,

    /// <summary>Sent literally: a value that changes on every request (path, request id, length).</summary>
    NoIndex,

    /// <summary>Sent literally and marked so no intermediary may index it (credentials, cookies: RFC 7541 7.1.3).</summary>
    NeverIndex,
}

/// <summary>
/// One connection's HPACK encoder (RFC 7541) for requests. A field found whole in the static or dynamic table is one
/// index; otherwise its name is referenced when either table has it and the value is written literally, entering the
/// dynamic table when the caller says the field repeats. Strings are written raw (no Huffman): cheaper to produce,
/// and loopback and pod networks are not short of bytes. Names go out in lower case; a value that HTTP/2 cannot
/// carry (a character beyond ISO-8859-1, CR, LF, NUL) is refused before anything of it is written.
/// </summary>
internal sealed class HpackEncoder
{
    private readonly HpackDynamicTable _table = new(HpackDecoder.DefaultTableSize);
    private int _pendingSizeUpdate = -1;

    /// <summary>The peer announced SETTINGS_HEADER_TABLE_SIZE: this side uses at most that, and says so in the next block.</summary>
    public void SetPeerTableSize(int size)
    {
        var use = Math.Min(size, HpackDecoder.DefaultTableSize);
        if (use != _table.MaxSize)
        {
            _table.Resize(use);
            _pendingSizeUpdate = use;
        }
    }

    /// <summary>Starts a header block: a pending table size update goes first (4.2).</summary>
    public void BeginBlock(IBufferWriter<byte> output)
    {
        if (_pendingSizeUpdate >= 0)
        {
            WriteInteger(output, 0x20, 5, _pendingSizeUpdate);
            _pendingSizeUpdate = -1;
        }
    }

    /// <summary>Whether <paramref name="value"/> can be carried as an HTTP/2 field value.</summary>
    public static bool IsSendable(string value)
    {
        foreach (var c in value)
        {
            if (c > '\u00ff' || c is '\r' or '\n' or '\0')
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Encodes one field; the caller checked the value with <see cref="IsSendable"/>.</summary>
    public void WriteField(IBufferWriter<byte> output, string name, string value, HpackIndexing indexing)
    {
        var staticName = HpackStaticTable.IndexOfName(name);
        var exact = HpackStaticTable.IndexOf(staticName, value);
        if (exact != 0)
        {
            WriteInteger(output, 0x80, 7, exact);
            return;
        }
        var nameIndex = staticName;
        var found = _table.Find(name, value, out var dynamicName);
        if (found >= 0)
        {
            WriteInteger(output, 0x80, 7, HpackStaticTable.Count + 1 + found);
            return;
        }
        if (nameIndex == 0 && dynamicName >= 0)
        {
            nameIndex = HpackStaticTable.Count + 1 + dynamicName;
        }
        var (pattern, prefix) = indexing switch
        {
            HpackIndexing.Index => (0x40, 6),
            HpackIndexing.NeverIndex => (0x10, 4),
            _ => (0x00, 4),
        };
        WriteInteger(output, pattern, prefix, nameIndex);
        if (nameIndex == 0)
        {
            WriteString(output, name, lowerCase: true);
        }
        WriteString(output, value, lowerCase: false);
        if (indexing == HpackIndexing.Index)
        {
            _table.Add(name, value);
        }
    }

    /// <summary>
    /// A literal field without indexing, its name spelled out and its value given as ASCII octets: for values that are
    /// new with every request (ids the sidecar made), which no table could match and which need no string.
    /// </summary>
    public static void WriteLiteral(IBufferWriter<byte> output, string name, ReadOnlySpan<byte> asciiValue)
    {
        WriteInteger(output, 0x00, 4, 0);
        WriteString(output, name, lowerCase: true);
        WriteInteger(output, 0x00, 7, asciiValue.Length);
        asciiValue.CopyTo(output.GetSpan(asciiValue.Length));
        output.Advance(asciiValue.Length);
    }

    private static void WriteString(IBufferWriter<byte> output, string text, bool lowerCase)
    {
        WriteInteger(output, 0x00, 7, text.Length);
        var span = output.GetSpan(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            span[i] = (byte)(lowerCase && c is >= 'A' and <= 'Z' ? c + 32 : c);
        }
        output.Advance(text.Length);
    }

    internal static void WriteInteger(IBufferWriter<byte> output, int pattern, int prefixBits, int value)
    {
        var span = output.GetSpan(6);
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            span[0] = (byte)(pattern | value);
            output.Advance(1);
            return;
        }
        span[0] = (byte)(pattern | max);
        value -= max;
        var at = 1;
        while (value >= 0x80)
        {
            span[at++] = (byte)((value & 0x7f) | 0x80);
            value >>= 7;
        }
        span[at++] = (byte)value;
        output.Advance(at);
    }
}
