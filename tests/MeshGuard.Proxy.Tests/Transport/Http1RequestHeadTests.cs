using System.Buffers;
using System.Text;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http1;
using MeshGuard.Proxy.Transport.Http2;
using Microsoft.AspNetCore.Http;

namespace MeshGuard.Proxy.Tests.Transport;

public sealed class Http1RequestHeadTests
{
    private static (RequestHeadStatus Status, Http1RequestHead Head, FieldList Fields, long Consumed) Parse(ReadOnlySequence<byte> bytes, string? lastTarget = null)
    {
        var fields = new FieldList();
        var status = Http1RequestHead.TryParse(bytes, fields, new HpackFieldStrings(), lastTarget, out var head, out var end);
        return (status, head, fields, bytes.Slice(bytes.Start, end).Length);
    }

    private static (RequestHeadStatus Status, Http1RequestHead Head, FieldList Fields, long Consumed) Parse(string text, string? lastTarget = null) =>
        Parse(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(text)), lastTarget);

    [Fact]
    public void APlainRequestIsReadWithItsTargetFieldsAndBodyFraming()
    {
        const string Head = "POST /orders/7?expand=items HTTP/1.1\r\nHost: orders:8080\r\nContent-Length: 5\r\nX-Trace:  abc \t\r\nCookie: a=1\r\n\r\n";
        var parsed = Parse(Head + "hello");
        Assert.Equal(RequestHeadStatus.Plain, parsed.Status);
        Assert.Same(HttpMethods.Post, parsed.Head.Method);
        Assert.Equal("/orders/7?expand=items", parsed.Head.RawTarget);
        Assert.Equal("/orders/7".Length, parsed.Head.QueryAt);
        Assert.Equal(5, parsed.Head.ContentLength);
        Assert.False(parsed.Head.Chunked);
        Assert.Equal(Head.Length, parsed.Consumed);
        Assert.Equal("orders:8080", parsed.Fields["Host"]);
        Assert.Equal("abc", parsed.Fields["x-trace"]);
        Assert.Equal("a=1", parsed.Fields["cookie"]);
    }

    [Fact]
    public void AHeadSplitAcrossSegmentsIsReadAsOneAndAPartialHeadWaits()
    {
        var text = Encoding.Latin1.GetBytes("GET /a HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n");
        for (var cut = 1; cut < text.Length; cut++)
        {
            var parsed = Parse(Segments.Of(text[..cut], text[cut..]));
            Assert.Equal(RequestHeadStatus.Plain, parsed.Status);
            Assert.Equal(text.Length, parsed.Consumed);
            Assert.Equal("1", parsed.Fields["X-A"]);
            Assert.Equal(RequestHeadStatus.NeedMore, Parse(new ReadOnlySequence<byte>(text[..cut])).Status);
        }
    }

    [Theory]
    // Whatever a stricter reader could frame or route differently is Kestrel's server's to answer (or refuse).
    [InlineData("GET http://orders/a HTTP/1.1\r\nHost: payments\r\n\r\n")]
    [InlineData("GET http://orders/a HTTP/1.1\r\nHost: Orders\r\n\r\n")]
    [InlineData("GET HTTP://orders/a HTTP/1.1\r\nHost: orders\r\n\r\n")]
    [InlineData("GET https://orders/a HTTP/1.1\r\nHost: orders\r\n\r\n")]
    [InlineData("GET http://user@orders/a HTTP/1.1\r\nHost: orders\r\n\r\n")]
    [InlineData("GET http://orders?a HTTP/1.1\r\nHost: orders\r\n\r\n")]
    [InlineData("GET http:///a HTTP/1.1\r\nHost: orders\r\n\r\n")]
    [InlineData("GET * HTTP/1.1\r\nHost: orders\r\n\r\n")]
    [InlineData("CONNECT orders:443 HTTP/1.1\r\nHost: orders:443\r\n\r\n")]
    [InlineData("GET /a HTTP/1.0\r\nHost: orders\r\n\r\n")]
    [InlineData("GET /a#frag HTTP/1.1\r\nHost: orders\r\n\r\n")]
    [InlineData("GET /a  HTTP/1.1\r\nHost: orders\r\n\r\n")]
    [InlineData("GET /a HTTP/1.1\r\n\r\n")]
    [InlineData("GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")]
    [InlineData("GET /a HTTP/1.1\r\nHost: a/b\r\n\r\n")]
    [InlineData("GET /a HTTP/1.1\r\nHost : a\r\n\r\n")]
    [InlineData("GET /a HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n")]
    [InlineData("GET /a HTTP/1.1\r\nHost: a\r\nX-A: caf\u00e9\r\n\r\n")]
    [InlineData("GET /a HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n")]
    [InlineData("GET /a HTTP/1.1\nHost: a\n\n")]
    [InlineData("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n")]
    [InlineData("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n")]
    [InlineData("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")]
    [InlineData("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")]
    [InlineData("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")]
    [InlineData("POST /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")]
    [InlineData("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")]
    [InlineData("GET /a HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")]
    [InlineData("\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("G@T /a HTTP/1.1\r\nHost: a\r\n\r\n")]
    public void AnythingButAPlainHeadIsLeftUnreadForKestrel(string text)
    {
        var parsed = Parse(text);
        Assert.Equal(RequestHeadStatus.NotPlain, parsed.Status);
        Assert.Empty(parsed.Fields);
    }

    [Theory]
    [InlineData("GET http://orders:8080/a/b?q=1 HTTP/1.1\r\nHost: orders:8080\r\n\r\n", 18, 22)]
    [InlineData("GET http://orders HTTP/1.1\r\nHost: orders\r\n\r\n", 13, -1)]
    public void AnAbsoluteFormTargetWhoseAuthorityIsTheHostIsPlain(string text, int pathAt, int queryAt)
    {
        var parsed = Parse(text);
        Assert.Equal(RequestHeadStatus.Plain, parsed.Status);
        Assert.Equal(text[4..text.IndexOf(" HTTP/1.1", StringComparison.Ordinal)], parsed.Head.RawTarget);
        Assert.Equal(pathAt, parsed.Head.PathAt);
        Assert.Equal(queryAt, parsed.Head.QueryAt);
    }

    [Fact]
    public void HeadsBeyondKestrelsLimitsAreLeftToItsRefusals()
    {
        Assert.Equal(RequestHeadStatus.NotPlain, Parse($"GET /{new string('a', 9 * 1024)} HTTP/1.1\r\nHost: a\r\n\r\n").Status);
        Assert.Equal(RequestHeadStatus.NotPlain, Parse($"GET /a HTTP/1.1\r\nHost: a\r\nX-Big: {new string('b', 40 * 1024)}\r\n\r\n").Status);
        Assert.Equal(RequestHeadStatus.NotPlain, Parse($"GET /a HTTP/1.1\r\nHost: a\r\nX-Big: {new string('b', 40 * 1024)}").Status);
        var many = string.Concat(Enumerable.Range(0, 101).Select(i => $"X-{i}: 1\r\n"));
        Assert.Equal(RequestHeadStatus.NotPlain, Parse($"GET /a HTTP/1.1\r\nHost: a\r\n{many}\r\n").Status);
    }

    [Fact]
    public void AChunkedBodyAndConnectionOptionsAreRead()
    {
        var parsed = Parse("PUT /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nConnection: x-hop, close\r\nx-hop: 1\r\n\r\n");
        Assert.Equal(RequestHeadStatus.Plain, parsed.Status);
        Assert.True(parsed.Head.Chunked);
        Assert.Null(parsed.Head.ContentLength);
        Assert.True(parsed.Head.Close);
        Assert.True(parsed.Head.NamesFields);
        // The collection holds the Connection header whole: the server drops what it names.
        Assert.Equal("x-hop, close", parsed.Fields["Connection"]);
    }

    [Fact]
    public void ARepeatedTargetIsTheSameStringAndAnOtherIsANewOne()
    {
        var first = Parse("GET /same HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Same(first.Head.RawTarget, Parse("GET /same HTTP/1.1\r\nHost: a\r\n\r\n", first.Head.RawTarget).Head.RawTarget);
        Assert.Equal("/samf", Parse("GET /samf HTTP/1.1\r\nHost: a\r\n\r\n", first.Head.RawTarget).Head.RawTarget);
    }

    [Fact]
    public void AMethodOutsideTheKnownOnesIsKeptAsSent()
    {
        var parsed = Parse("get /a HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal(RequestHeadStatus.Plain, parsed.Status);
        Assert.Equal("get", parsed.Head.Method);
        Assert.Equal("PROPFIND", Parse("PROPFIND /a HTTP/1.1\r\nHost: a\r\n\r\n").Head.Method);
    }

    [Theory]
    [InlineData("GET /a HTTP/1.1\r\nHost: a\r\nConnection: x-hop, close\r\nconnection:keep-alive,X-Two\r\n\r\n", "x-hop, X-Two")]
    [InlineData("GET /a HTTP/1.1\nHost: a\nConnection: x-hop, close\n\n", "x-hop")]
    [InlineData("GET /a HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "")]
    public void TheFieldsAHeadLeftToKestrelNamesAreReadAsALenientReaderWould(string text, string named) =>
        Assert.Equal(named, HopByHopFields.ScanNamed(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(text)), Http1RequestHead.MaxHeadBytes));

    [Fact]
    public void AHeadLeftToKestrelIsScannedTheSameWhereverItsSegmentsEnd()
    {
        var text = Encoding.Latin1.GetBytes("GET /a HTTP/1.1\nHost: a\r\nConnection: x-one, close\nConnection: X-Two\n\n");
        for (var cut = 1; cut < text.Length; cut++)
        {
            Assert.Equal("x-one, X-Two", HopByHopFields.ScanNamed(Segments.Of(text[..cut], text[cut..]), Http1RequestHead.MaxHeadBytes));
        }
    }

    [Fact]
    public void AHeadLeftToKestrelIsScannedOnlyOnceItIsWhole() =>
        Assert.Null(HopByHopFields.ScanNamed(new ReadOnlySequence<byte>("GET /a HTTP/1.1\nHost: a\nConnection: x-hop\n"u8.ToArray()), Http1RequestHead.MaxHeadBytes));
}
