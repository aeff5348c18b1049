using System.Buffers;
using System.Text;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>Receives the fields of one decoded header block, pseudo-fields first, names in lower case.</summary>
internal interface IHpackFieldSink
{
    void OnField(string name, string value);
}

/// <summary>
/// One connection's HPACK decoder (RFC 7541): a whole header block in, fields out. A field that comes from the
/// static or the dynamic table is handed over as the table's own strings, so a steady peer costs no strings for the
/// fields it indexes, and literals reuse known names and repeated values (<see cref="HpackFieldStrings"/>). Bounded:
/// the dynamic table by the size this side announced, a block's fields by <see cref="MaxFieldListSize"/> (counted as
/// RFC 9113 counts them), and names and values are checked (lower-case token names, no CR, LF or NUL in values).
/// </summary>
internal sealed class HpackDecoder(int maxTableSize = HpackDecoder.DefaultTableSize, int maxFieldListSize = HpackDecoder.DefaultMaxFieldListSize)
{
    public const int DefaultTableSize = 4096;
    public const int DefaultMaxFieldListSize = 64 * 1024;

    private static readonly SearchValues<byte> LowerCaseTokenBytes =
        SearchValues.Create(Encoding.ASCII.GetBytes(Http1.Http1HeadWriter.TokenCharacters.Replace("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "", StringComparison.Ordinal)));

    private readonly HpackDynamicTable _table = new(maxTableSize);
    private readonly HpackFieldStrings _strings = new();
    private readonly int _maxTableSize = maxTableSize;

    public int MaxFieldListSize { get; } = maxFieldListSize;

    /// <summary>Decodes a block whose fields nobody takes (its stream is gone): the dynamic table must still follow it.</summary>
    public void Skip(ReadOnlySpan<byte> block) => Decode(block, DiscardingSink.Instance);

    private sealed class DiscardingSink : IHpackFieldSink
    {
        public static readonly DiscardingSink Instance = new();

        public void OnField(string name, string value)
        {
        }
    }

    /// <summary>Decodes one complete header block (HEADERS and its CONTINUATIONs, joined) into <paramref name="sink"/>.</summary>
    public void Decode(ReadOnlySpan<byte> block, IHpackFieldSink sink)
    {
        var listSize = 0;
        var fieldSeen = false;
        while (!block.IsEmpty)
        {
            var first = block[0];
            string name, value;
            if ((first & 0x80) != 0)
            {
                // Indexed field (6.1).
                var index = ReadInteger(ref block, 7);
                (name, value) = Lookup(index);
            }
            else if ((first & 0xc0) == 0x40)
            {
                // Literal with incremental indexing (6.2.1).
                name = ReadName(ref block, 6);
                value = ReadString(ref block, name, reuse: true);
                _table.Add(name, value);
            }
            else if ((first & 0xe0) == 0x20)
            {
                // Dynamic table size update (6.3): only before the block's first field.
                if (fieldSeen)
                {
                    throw new HpackException("a dynamic table size update follows a field");
                }
                var size = ReadInteger(ref block, 5);
                if (size > _maxTableSize)
                {
                    throw new HpackException($"a dynamic table size update to {size} exceeds the {_maxTableSize} announced");
                }
                _table.Resize(size);
                continue;
            }
            else
            {
                // Literal without indexing (6.2.2) or never indexed (6.2.3). A never-indexed value (a credential) is
                // not kept for reuse beyond its request.
                var neverIndexed = (first & 0xf0) == 0x10;
                name = ReadName(ref block, 4);
                value = ReadString(ref block, name, reuse: !neverIndexed);
            }
            fieldSeen = true;
            listSize += HpackDynamicTable.EntrySize(name, value);
            if (listSize > MaxFieldListSize)
            {
                throw new HpackException($"a header block holds more than {MaxFieldListSize} bytes of fields");
            }
            sink.OnField(name, value);
        }
    }

    private (string Name, string Value) Lookup(int index)
    {
        if (index == 0)
        {
            throw new HpackException("a field refers to index 0");
        }
        if (index <= HpackStaticTable.Count)
        {
            return HpackStaticTable.Entries[index - 1];
        }
        return _table.Get(index - HpackStaticTable.Count - 1) ?? throw new HpackException($"a field refers to index {index}, beyond the tables");
    }

    private string ReadName(ref ReadOnlySpan<byte> block, int prefixBits)
    {
        var index = ReadInteger(ref block, prefixBits);
        return index == 0 ? ReadString(ref block, nameOfValue: null, reuse: false) : Lookup(index).Name;
    }

    /// <summary>A literal string: a name when <paramref name="nameOfValue"/> is null, else that field's value.</summary>
    private string ReadString(ref ReadOnlySpan<byte> block, string? nameOfValue, bool reuse)
    {
        if (block.IsEmpty)
        {
            throw new HpackException("a header block ends inside a field");
        }
        var huffman = (block[0] & 0x80) != 0;
        var length = ReadInteger(ref block, 7);
        if (length > block.Length)
        {
            throw new HpackException("a string runs past the end of its header block");
        }
        var raw = block[..length];
        block = block[length..];
        if (!huffman)
        {
            return Text(raw, nameOfValue, reuse);
        }
        var max = HuffmanDecoder.MaxDecodedLength(length);
        byte[]? rented = null;
        var buffer = max <= 256 ? stackalloc byte[256] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            var decoded = HuffmanDecoder.Decode(raw, buffer);
            return Text(buffer[..decoded], nameOfValue, reuse);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private string Text(ReadOnlySpan<byte> bytes, string? nameOfValue, bool reuse)
    {
        if (nameOfValue is null)
        {
            if (bytes.IsEmpty)
            {
                throw new HpackException("a field has an empty name");
            }
            // A pseudo-field's colon may only lead; upper case is malformed in HTTP/2 (RFC 9113 8.2.1).
            var rest = bytes[0] == (byte)':' ? bytes[1..] : bytes;
            if (rest.IsEmpty || rest.ContainsAnyExcept(LowerCaseTokenBytes))
            {
                throw new HpackException("a field name is not a lower-case token");
            }
            return HpackFieldStrings.Name(bytes);
        }
        if (bytes.IndexOfAny((byte)'\r', (byte)'\n', (byte)0) >= 0)
        {
            throw new HpackException("a field value holds CR, LF or NUL");
        }
        return reuse ? _strings.Value(nameOfValue, bytes) : Encoding.Latin1.GetString(bytes);
    }

    /// <summary>An HPACK integer with an N-bit prefix (5.1), at most 2^28: nothing this side accepts is larger.</summary>
    internal static int ReadInteger(ref ReadOnlySpan<byte> block, int prefixBits)
    {
        if (block.IsEmpty)
        {
            throw new HpackException("a header block ends inside an integer");
        }
        var mask = (1 << prefixBits) - 1;
        var value = block[0] & mask;
        block = block[1..];
        if (value < mask)
        {
            return value;
        }
        for (var shift = 0; ; shift += 7)
        {
            if (block.IsEmpty)
            {
                throw new HpackException("a header block ends inside an integer");
            }
            if (shift > 21)
            {
                throw new HpackException("an integer is too large");
            }
            var octet = block[0];
            block = block[1..];
            value += (octet & 0x7f) << shift;
            if ((octet & 0x80) == 0)
            {
                return value;
            }
        }
    }
}
