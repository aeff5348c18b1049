using System.Buffers;
using System.Text;
using MeshGuard.Proxy.Transport.Http1;

namespace MeshGuard.Proxy.Tests.Transport;

public sealed class Http1ResponseHeadTests
{
    private static (Http1ResponseHead.ParseStatus Status, Http1ResponseHead Head, RecordingFields Fields, long Consumed, string? Error) Parse(string text, bool headRequest = false) =>
        Parse(new ReadOnlySequence<byte>(Encoding.Latin1.GetBytes(text)), headRequest);

    private static (Http1ResponseHead.ParseStatus Status, Http1ResponseHead Head, RecordingFields Fields, long Consumed, string? Error) Parse(ReadOnlySequence<byte> bytes, bool headRequest = false)
    {
        var fields = new RecordingFields();
        var status = Http1ResponseHead.TryParse(bytes, headRequest, fields, out var head, out var consumed, out var error);
        return (status, head, fields, bytes.Slice(bytes.Start, consumed).Length, error);
    }

    [Fact]
    public void AContentLengthAnswerIsFramedByItsLengthAndItsEndToEndFieldsArePassedOn()
    {
        const string Head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nX-App:  padded value \t\r\n\r\n";
        var parsed = Parse(Head + "ok\n");
        Assert.Equal(Http1ResponseHead.ParseStatus.Done, parsed.Status);
        Assert.Equal(200, parsed.Head.Status);
        Assert.Equal(BodyFraming.ContentLength, parsed.Head.Framing);
        Assert.Equal(3, parsed.Head.ContentLength);
        Assert.True(parsed.Head.KeepAlive);
        Assert.Equal(Head.Length, parsed.Consumed);
        Assert.Equal([("Content-Type", "text/plain"), ("X-App", "padded value")], parsed.Fields.Seen);
    }

    [Fact]
    public void AHeadSplitAcrossSegmentsParsesAsOne()
    {
        var text = Encoding.Latin1.GetBytes("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n");
        for (var cut = 1; cut < text.Length; cut++)
        {
            var parsed = Parse(Segments.Of(text[..cut], text[cut..]));
            Assert.Equal(Http1ResponseHead.ParseStatus.Done, parsed.Status);
            Assert.Equal(404, parsed.Head.Status);
            Assert.Equal([("X-A", "1")], parsed.Fields.Seen);
        }
    }

    [Fact]
    public void AnIncompleteHeadAsksForMore() =>
        Assert.Equal(Http1ResponseHead.ParseStatus.NeedMore, Parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n").Status);

    [Fact]
    public void InterimAnswersAreSkippedAndTheirFieldsAreNotTheFinalAnswers()
    {
        var parsed = Parse("HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
        Assert.Equal(Http1ResponseHead.ParseStatus.Done, parsed.Status);
        Assert.Equal(201, parsed.Head.Status);
        Assert.Empty(parsed.Fields.Seen);
    }

    [Fact]
    public void ChunkedOutranksContentLengthAndTheConnectionIsNotReusedAfter()
    {
        var parsed = Parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        Assert.Equal(BodyFraming.Chunked, parsed.Head.Framing);
        Assert.False(parsed.Head.KeepAlive);
    }

    [Fact]
    public void AnAnswerWithoutLengthRunsToTheCloseOfTheConnection()
    {
        var parsed = Parse("HTTP/1.1 200 OK\r\n\r\n");
        Assert.Equal(BodyFraming.UntilClose, parsed.Head.Framing);
        Assert.False(parsed.Head.KeepAlive);
    }

    [Theory]
    [InlineData("HTTP/1.1 204 No Content\r\n\r\n", false)]
    [InlineData("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true)]
    public void NoContentNotModifiedAndAnswersToHeadHaveNoBody(string text, bool headRequest)
    {
        var parsed = Parse(text, headRequest);
        Assert.Equal(BodyFraming.None, parsed.Head.Framing);
        Assert.True(parsed.Head.KeepAlive);
    }

    [Fact]
    public void ConnectionCloseAndHttp10EndTheConnectionAndHopByHopFieldsStopHere()
    {
        var parsed = Parse("HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n");
        Assert.False(parsed.Head.KeepAlive);
        Assert.Equal("close, X-Hop", parsed.Head.ConnectionOptions);
        Assert.Equal([("X-Hop", "1")], parsed.Fields.Seen);
        Assert.False(Parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").Head.KeepAlive);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: 1\0\r\n\r\n")]
    [InlineData("HTTP/1.1 20 OK\r\n\r\n")]
    [InlineData("HTTP/2 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 200OK\r\n\r\n")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")]
    public void AnAnswerThatCouldBeReadTwoWaysIsRefused(string text) =>
        Assert.Equal(Http1ResponseHead.ParseStatus.Invalid, Parse(text).Status);

    [Fact]
    public void AHeadLargerThanTheLimitIsRefusedEvenUnfinished()
    {
        var huge = "HTTP/1.1 200 OK\r\nX-Big: " + new string('a', Http1ResponseHead.MaxHeadBytes);
        Assert.Equal(Http1ResponseHead.ParseStatus.Invalid, Parse(huge).Status);
        Assert.Equal(Http1ResponseHead.ParseStatus.Invalid, Parse(huge + "\r\n\r\n").Status);
    }
}

internal sealed class Segments : ReadOnlySequenceSegment<byte>
{
    private Segments(byte[] bytes, long index)
    {
        Memory = bytes;
        RunningIndex = index;
    }

    /// <summary>A sequence of several segments, as a pipe hands out data that arrived in pieces.</summary>
    public static ReadOnlySequence<byte> Of(params byte[][] parts)
    {
        var first = new Segments(parts[0], 0);
        var last = first;
        for (var i = 1; i < parts.Length; i++)
        {
            var next = new Segments(parts[i], last.RunningIndex + last.Memory.Length);
            last.Next = next;
            last = next;
        }
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }
}
