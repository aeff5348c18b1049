using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using MeshGuard.Proxy.Transport.Http1;

namespace MeshGuard.Proxy.Tests.Transport;

public sealed class ChunkedCodecTests
{
    /// <summary>Feeds <paramref name="pieces"/> one after another, as reads would deliver them.</summary>
    private static (ChunkedDecoder.Status Status, string Body, RecordingFields Trailers) Decode(params string[] pieces)
    {
        var decoder = default(ChunkedDecoder);
        var output = new ArrayBufferWriter<byte>();
        var trailers = new RecordingFields();
        var pending = Array.Empty<byte>();
        var status = ChunkedDecoder.Status.NeedMore;
        foreach (var piece in pieces)
        {
            var bytes = pending.Concat(Encoding.Latin1.GetBytes(piece)).ToArray();
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            status = decoder.Decode(ref reader, output, trailers);
            pending = bytes[(int)reader.Consumed..];
            if (status != ChunkedDecoder.Status.NeedMore)
            {
                break;
            }
        }
        return (status, Encoding.Latin1.GetString(output.WrittenSpan), trailers);
    }

    [Fact]
    public void ChunksAreJoinedExtensionsSkippedAndTrailersRead()
    {
        var decoded = Decode("5;name=value\r\nhello\r\n6\r\n world\r\n0\r\ngrpc-status: 0\r\nX-Sum: ab\r\n\r\n");
        Assert.Equal(ChunkedDecoder.Status.Done, decoded.Status);
        Assert.Equal("hello world", decoded.Body);
        Assert.Equal([("grpc-status", "0"), ("X-Sum", "ab")], decoded.Trailers.Seen);
    }

    [Fact]
    public void AnyCutOfTheInputDecodesTheSame()
    {
        const string Whole = "A\r\n0123456789\r\n1\r\nx\r\n0\r\nT: v\r\n\r\n";
        for (var cut = 1; cut < Whole.Length; cut++)
        {
            var decoded = Decode(Whole[..cut], Whole[cut..]);
            Assert.Equal(ChunkedDecoder.Status.Done, decoded.Status);
            Assert.Equal("0123456789x", decoded.Body);
            Assert.Equal([("T", "v")], decoded.Trailers.Seen);
        }
    }

    [Theory]
    [InlineData("5\r\nhelloXX0\r\n\r\n")]
    [InlineData("-5\r\nhello\r\n0\r\n\r\n")]
    [InlineData("\r\nhello\r\n0\r\n\r\n")]
    [InlineData("1000000000000000\r\n")]
    [InlineData("0x5\r\nhello\r\n0\r\n\r\n")]
    [InlineData("0\r\nbad trailer\r\n\r\n")]
    public void MalformedFramingIsAnErrorNotAGuess(string input) =>
        Assert.Equal(ChunkedDecoder.Status.Invalid, Decode(input).Status);

    [Fact]
    public void ASizeLineThatNeverEndsIsRefusedOnceItIsTooLong() =>
        Assert.Equal(ChunkedDecoder.Status.Invalid, Decode("5;" + new string('x', 2000)).Status);

    [Fact]
    public async Task WhatTheEncoderWritesTheDecoderReadsBack()
    {
        var pipe = new Pipe();
        var parts = new[] { "first part ", new string('b', 5000), "", "last" };
        foreach (var part in parts.Where(p => p.Length > 0))
        {
            ChunkedEncoder.WriteChunkStart(pipe.Writer, part.Length);
            pipe.Writer.Write(Encoding.ASCII.GetBytes(part));
            ChunkedEncoder.WriteChunkEnd(pipe.Writer);
        }
        ChunkedEncoder.WriteLastChunk(pipe.Writer);
        await pipe.Writer.CompleteAsync();
        var written = (await pipe.Reader.ReadAsync()).Buffer;
        var decoded = Decode(Encoding.Latin1.GetString(written.ToArray()));
        Assert.Equal(ChunkedDecoder.Status.Done, decoded.Status);
        Assert.Equal(string.Concat(parts), decoded.Body);
    }
}
