using System.Buffers;
using System.Text;
using MeshGuard.Proxy.Transport.Http2;

namespace MeshGuard.Proxy.Tests.Transport.Http2;

public sealed class HpackTests
{
    private sealed class Fields : IHpackFieldSink
    {
        public List<(string Name, string Value)> Seen { get; } = [];

        public void OnField(string name, string value) => Seen.Add((name, value));
    }

    private static List<(string Name, string Value)> Decode(HpackDecoder decoder, string hex)
    {
        var fields = new Fields();
        decoder.Decode(Convert.FromHexString(hex), fields);
        return fields.Seen;
    }

    // Three answers encoded by an independent HPACK implementation with Huffman strings, a 256-octet table (so the
    // first block starts with a size update) and evictions between them: the responses of RFC 7541 C.6.
    [Fact]
    public void HuffmanCodedAnswersWithTableUpdatesAndEvictionsDecodeToTheirFields()
    {
        var decoder = new HpackDecoder(maxTableSize: 256);
        Assert.Equal(
            [(":status", "302"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")],
            Decode(decoder, "3fe101488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3"));
        Assert.Equal(
            [(":status", "307"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com")],
            Decode(decoder, "4883640effc1c0bf"));
        Assert.Equal(
            [(":status", "200"), ("cache-control", "private"), ("date", "Mon, 21 Oct 2013 20:13:22 GMT"), ("location", "https://www.example.com"),
             ("content-encoding", "gzip"), ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")],
            Decode(decoder, "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"));
    }

    [Fact]
    public void AFieldTakenFromTheDynamicTableIsTheTablesOwnString()
    {
        var decoder = new HpackDecoder();
        var first = Decode(decoder, "88" + "40" + Literal("x-app") + Literal("steady"));
        var second = Decode(decoder, "88" + "be");
        Assert.Equal(("x-app", "steady"), second[1]);
        Assert.Same(first[1].Value, second[1].Value);
    }

    [Fact]
    public void EveryOctetSurvivesHuffmanDecoding()
    {
        // All 256 octets, Huffman-coded by an independent implementation.
        const string Encoded = "ffc7fffd8fffffe2fffffe3fffffe4fffffe5fffffe6fffffe7fffffe8ffffeafffffff3fffffa7fffffabffffffdfffffebfffffecfffffedfffffeefffffefffffff0ffffff1ffffff2fffffffbfffffcffffffd3fffffd7fffffdbfffffdffffffe3fffffe7fffffebfffffed4fe3f9ffaffcabf1febfafefe7fdfd2cbb00089969b71d79fb9f7fff20ffbff3ff50ddbd7f061c58f265cd9f469d5af66dddbf871e5f9cff7ff7fffc3ff9ffe45fff4719242cb34e6e9d68a6a3d7dac426defe3cfaf7fffbfe7ffbffdffffffcfffe6ffff4bfff9ffffa3fffd3ffff53fffd5ffffb3fffeb7fffdaffffb7ffff73fffeeffffdeffffebffffbfffffd9ffffdbfffebffffe0ffffeeffffc3ffff8bffff1ffffe4fffee7fffb1ffff97fffd9ffffcdffff9fffffbffffdafffeeffff4ffffb7fffee7fffe8ffffd3fffdeffffd5fffeeffffbdffffe1fffdfffff7fffff5ffffecffff07fff87fffe0ffff17fffedffff87ffff77fffeffffeaffff8bfffe3ffff93ffff87fffcbffff37ffff1fffff83ffffe1fffebfffe3ffff3fffff2ffffa3ffffd9fffff17ffffc7fffff27ffffdefffffbffffff2fffff8fffffb7fff97fff8fffffe6fffffc1fffff87ffffe7fffffc5ffffe5fffe4ffff2fffffd1fffff4ffffffefffffe3fffffc9fffff97fffb3ffffcffffb7fffcdffff4ffff9ffffd1ffffcffffeaffffafffffddffffeffffff4fffff5fffffabffffa7ffffd7fffff9bffffecfffffb7fffff3fffffe8fffffd3fffffabfffff5fffffff7ffffecfffffdbfffffbbfffff7ffffff0fffffbbf";
        var source = Convert.FromHexString(Encoded);
        var decoded = new byte[HuffmanDecoder.MaxDecodedLength(source.Length)];
        var length = HuffmanDecoder.Decode(source, decoded);
        Assert.Equal(Enumerable.Range(0, 256).Select(i => (byte)i).ToArray(), decoded[..length]);
    }

    [Theory]
    [InlineData("ff", "padding longer than 7 bits")]
    [InlineData("fe", "padding of zero bits")]
    [InlineData("fffffffc", "the EOS symbol inside the string")]
    public void AHuffmanStringWithBadPaddingOrEosIsRefused(string hex, string why)
    {
        Assert.Throws<HpackException>(() => HuffmanDecoder.Decode(Convert.FromHexString(hex), new byte[16]));
        _ = why;
    }

    [Theory]
    [InlineData("80", "index 0")]
    [InlineData("ff00", "an index beyond both tables")]
    [InlineData("4005582d4170700161", "an upper-case name")]
    [InlineData("400178036100620a", "a value holding LF")]
    [InlineData("0001780a", "a string longer than the block")]
    [InlineData("88" + "3fe11f", "a table size update after a field")]
    [InlineData("3fe21f", "a table size update beyond the size announced")]
    [InlineData("ffffffffff0f", "an integer too large")]
    public void AMalformedHeaderBlockIsACompressionError(string hex, string why)
    {
        Assert.Throws<HpackException>(() => Decode(new HpackDecoder(), hex));
        _ = why;
    }

    [Fact]
    public void AHeaderBlockLargerThanTheFieldListLimitIsRefused()
    {
        var decoder = new HpackDecoder(maxFieldListSize: 100);
        Assert.Throws<HpackException>(() => Decode(decoder, "00" + Literal("x-big") + Literal(new string('a', 80))));
    }

    [Fact]
    public void WhatTheEncoderWritesTheDecoderReadsBackAcrossRequestsThatShareTheTable()
    {
        var encoder = new HpackEncoder();
        var decoder = new HpackDecoder();
        List<(string, string, HpackIndexing)> request =
        [
            (":method", "GET", HpackIndexing.Index), (":scheme", "https", HpackIndexing.Index), (":authority", "orders", HpackIndexing.Index),
            (":path", "/orders/1", HpackIndexing.NoIndex), ("User-Agent", "shop/1.0", HpackIndexing.Index),
            ("authorization", "Bearer secret", HpackIndexing.NeverIndex), ("x-request-id", "r1", HpackIndexing.NoIndex),
        ];
        var sizes = new List<int>();
        for (var i = 0; i < 3; i++)
        {
            var block = new ArrayBufferWriter<byte>();
            encoder.BeginBlock(block);
            foreach (var (name, value, indexing) in request)
            {
                encoder.WriteField(block, name, value, indexing);
            }
            var fields = new Fields();
            decoder.Decode(block.WrittenSpan, fields);
            Assert.Equal(request.Select(f => (f.Item1.ToLowerInvariant(), f.Item2)), fields.Seen);
            sizes.Add(block.WrittenCount);
        }
        // The second request's repeated fields are one octet each: authority and user agent come from the table.
        Assert.True(sizes[1] < sizes[0] - 10, $"block sizes {string.Join(", ", sizes)}");
        Assert.Equal(sizes[1], sizes[2]);
    }

    [Fact]
    public void FieldsFoundInATableThatWrappedAndEvictedDecodeToThemselves()
    {
        // Many distinct indexed fields: the table fills, evicts its oldest and its ring wraps, so the encoder finds
        // entries on both sides of the wrap, and a name whose value changed points at the newest entry with it.
        var encoder = new HpackEncoder();
        var decoder = new HpackDecoder();
        for (var i = 0; i < 400; i++)
        {
            List<(string, string)> request = [(":method", "POST"), ($"X-Key-{i % 37}", $"value-{i % 11}"), ("x-fixed", "same"), ($"x-key-{(i * 7) % 37}", $"value-{i % 5}")];
            var block = new ArrayBufferWriter<byte>();
            encoder.BeginBlock(block);
            foreach (var (name, value) in request)
            {
                encoder.WriteField(block, name, value, HpackIndexing.Index);
            }
            var fields = new Fields();
            decoder.Decode(block.WrittenSpan, fields);
            Assert.Equal(request.Select(f => (f.Item1.ToLowerInvariant(), f.Item2)), fields.Seen);
        }
    }

    // Literal without indexing, new name (0x00): a request id and a path, as the outbound sidecar sends them.
    [Fact]
    public void ALiteralKnownNameIsItsInternedStringAndARepeatedValueIsTheStringBefore()
    {
        var decoder = new HpackDecoder();
        var first = Decode(decoder, "00" + Literal("x-request-id") + Literal("0123") + "00" + Literal(":path") + Literal("/orders/1"));
        var second = Decode(decoder, "00" + Literal("x-request-id") + Literal("4567") + "00" + Literal(":path") + Literal("/orders/1"));
        var third = Decode(decoder, "00" + Literal("x-request-id") + Literal("4567") + "00" + Literal(":path") + Literal("/orders/2"));
        Assert.Same("x-request-id", first[0].Name);
        Assert.Same(":path", second[1].Name);
        Assert.Equal([("x-request-id", "4567"), (":path", "/orders/1")], second);
        Assert.Same(first[1].Value, second[1].Value);
        Assert.NotSame(first[0].Value, second[0].Value);
        // Only the same octets give the same string: one octet more or different is a new value.
        Assert.Equal([("x-request-id", "4567"), (":path", "/orders/2")], third);
        Assert.Equal("/orders/1", second[1].Value);
        Assert.Equal(("x-custom-name", "v"), Decode(decoder, "00" + Literal("x-custom-name") + Literal("v"))[0]);
    }

    [Fact]
    public void ANeverIndexedValueIsNotKeptForTheNextRequest()
    {
        var decoder = new HpackDecoder();
        // 0x10: never indexed, new name.
        var first = Decode(decoder, "10" + Literal("authorization") + Literal("Bearer secret"));
        var second = Decode(decoder, "10" + Literal("authorization") + Literal("Bearer secret"));
        Assert.Equal(("authorization", "Bearer secret"), second[0]);
        Assert.NotSame(first[0].Value, second[0].Value);
    }

    [Fact]
    public void ACredentialIsMarkedNeverIndexedAndStaysOutOfTheTable()
    {
        var encoder = new HpackEncoder();
        var first = new ArrayBufferWriter<byte>();
        encoder.WriteField(first, "authorization", "Bearer secret", HpackIndexing.NeverIndex);
        // 0001NNNN with the static name index of authorization (23): 0x1f 0x08.
        Assert.Equal(new byte[] { 0x1f, 0x08 }, first.WrittenSpan[..2].ToArray());
        var second = new ArrayBufferWriter<byte>();
        encoder.WriteField(second, "authorization", "Bearer secret", HpackIndexing.NeverIndex);
        Assert.Equal(first.WrittenSpan.ToArray(), second.WrittenSpan.ToArray());
    }

    [Fact]
    public void APeerThatShrinksItsTableGetsASizeUpdateFirstInTheNextBlock()
    {
        var encoder = new HpackEncoder();
        encoder.SetPeerTableSize(0);
        var block = new ArrayBufferWriter<byte>();
        encoder.BeginBlock(block);
        encoder.WriteField(block, "x-app", "one", HpackIndexing.Index);
        var fields = new Fields();
        var decoder = new HpackDecoder();
        decoder.Decode(block.WrittenSpan, fields);
        Assert.Equal(0x20, block.WrittenSpan[0]);
        Assert.Equal([("x-app", "one")], fields.Seen);
    }

    [Theory]
    [InlineData("a\r\nb")]
    [InlineData("nul\0")]
    [InlineData("snowman \u2603")]
    public void AValueHttp2CannotCarryIsNotSendable(string value) => Assert.False(HpackEncoder.IsSendable(value));

    private static string Literal(string text) => ((byte)text.Length).ToString("x2") + Convert.ToHexString(Encoding.Latin1.GetBytes(text));
}
