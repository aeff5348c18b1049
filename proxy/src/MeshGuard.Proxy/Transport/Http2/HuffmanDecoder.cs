namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// Decodes HPACK's Huffman-coded strings (RFC 7541 5.2) by walking a binary tree built once from the code table.
/// Refused: the EOS symbol inside a string, and padding longer than 7 bits or not made of one bits.
/// </summary>
internal static class HuffmanDecoder
{
    private const int Eos = 256;

    // Node n's children are at [2n] (bit 0) and [2n + 1] (bit 1): a positive entry is the next node, a negative one
    // is a symbol (-(symbol + 1)), zero is no code.
    private static readonly short[] Tree = Build();

    /// <summary>At most how many octets <paramref name="encodedLength"/> coded octets decode to (the shortest code is 5 bits).</summary>
    public static int MaxDecodedLength(int encodedLength) => (int)(encodedLength * 8L / 5);

    /// <summary>Decodes <paramref name="source"/> into <paramref name="destination"/>; returns the decoded length.</summary>
    public static int Decode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        var tree = Tree;
        var node = 0;
        var written = 0;
        var bitsSinceSymbol = 0;
        var padIsOnes = true;
        foreach (var octet in source)
        {
            for (var shift = 7; shift >= 0; shift--)
            {
                var bit = (octet >> shift) & 1;
                var next = tree[(2 * node) + bit];
                bitsSinceSymbol++;
                padIsOnes &= bit == 1;
                if (next > 0)
                {
                    node = next;
                    continue;
                }
                if (next == 0)
                {
                    throw new HpackException("a Huffman-coded string holds a sequence that is no code");
                }
                var symbol = -next - 1;
                if (symbol == Eos)
                {
                    throw new HpackException("a Huffman-coded string holds the EOS symbol");
                }
                destination[written++] = (byte)symbol;
                node = 0;
                bitsSinceSymbol = 0;
                padIsOnes = true;
            }
        }
        if (bitsSinceSymbol > 7 || !padIsOnes)
        {
            throw new HpackException("a Huffman-coded string ends in padding that is not the EOS prefix");
        }
        return written;
    }

    private static short[] Build()
    {
        var codes = HuffmanCode.Codes;
        var lengths = HuffmanCode.Lengths;
        var tree = new short[2 * 512];
        var nodes = 1;
        for (var symbol = 0; symbol <= Eos; symbol++)
        {
            var node = 0;
            for (var i = lengths[symbol] - 1; i >= 0; i--)
            {
                var slot = (2 * node) + (int)((codes[symbol] >> i) & 1);
                if (i == 0)
                {
                    tree[slot] = (short)(-symbol - 1);
                }
                else
                {
                    if (tree[slot] == 0)
                    {
                        tree[slot] = (short)nodes++;
                    }
                    node = tree[slot];
                }
            }
        }
        return tree;
    }
}

/// <summary>A header block that cannot be decoded: a connection error of type COMPRESSION_ERROR (RFC 9113 4.3).</summary>
internal sealed class HpackException(string message) : Exception(message);
