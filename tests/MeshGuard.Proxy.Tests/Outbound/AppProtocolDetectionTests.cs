using System.IO.Pipelines;
using System.Text;
using MeshGuard.Proxy.Outbound;
using MeshGuard.Proxy.Protocols;

namespace MeshGuard.Proxy.Tests.Outbound;

public sealed class AppProtocolDetectionTests
{
    private const string Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    [Theory]
    [InlineData(new[] { Preface + "\0\0\0\x04" }, "Http2")]
    [InlineData(new[] { "PRI * HT", "TP/2.0\r\n\r\n", "SM\r\n\r\n" }, "Http2")]
    [InlineData(new[] { "GET / HTTP/1.1\r\nHost: orders\r\n\r\n" }, "Http1")]
    [InlineData(new[] { "PRI * HTTP/1.1\r\n\r\n" }, "Http1")]
    [InlineData(new[] { "P", "OST /orders HTTP/1.1\r\n" }, "Http1")]
    [InlineData(new[] { "GET /a", "/b HTTP/1.0", "\r\n" }, "Http1")]
    [InlineData(new[] { "*3\r\n$3\r\nSET\r\n" }, "Opaque")]
    [InlineData(new[] { "SET ", "key value\r\n" }, "Opaque")]
    [InlineData(new[] { "\x16\x03\x01\x02\x00" }, "Opaque")]
    public async Task TheFirstBytesDecideTheProtocolAndNoByteIsConsumed(string[] chunks, string expected)
    {
        var pipe = new Pipe();
        var detection = AppProtocolDetection.DetectAsync(pipe.Reader, CancellationToken.None).AsTask();
        for (var i = 0; i < chunks.Length; i++)
        {
            // Every chunk but the last leaves the verdict open: nothing can be decided yet.
            Assert.False(detection.IsCompleted, "decided before the bytes that decide arrived");
            await pipe.Writer.WriteAsync(Encoding.Latin1.GetBytes(chunks[i]));
            await Task.Yield();
        }
        Assert.Equal(Enum.Parse<DetectedProtocol>(expected), await detection.WaitAsync(TimeSpan.FromSeconds(5)));

        // The protocol chosen afterwards reads every byte from the start.
        await pipe.Writer.CompleteAsync();
        var all = new MemoryStream();
        await pipe.Reader.CopyToAsync(all);
        Assert.Equal(string.Concat(chunks), Encoding.Latin1.GetString(all.ToArray()));
    }

    [Fact]
    public async Task AConnectionThatEndsBeforeItsBytesDecideIsOpaque()
    {
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync("PRI * HTTP/2"u8.ToArray());
        await pipe.Writer.CompleteAsync();
        Assert.Equal(DetectedProtocol.Opaque, await AppProtocolDetection.DetectAsync(pipe.Reader, CancellationToken.None));
    }

    [Fact]
    public async Task ARequestLineLongerThanEightKiBIsNotHttp()
    {
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(Encoding.ASCII.GetBytes("GET /" + new string('a', 9000)));
        Assert.Equal(DetectedProtocol.Opaque, await AppProtocolDetection.DetectAsync(pipe.Reader, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task DetectionWaitingForBytesStopsWhenCancelled()
    {
        var pipe = new Pipe();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => AppProtocolDetection.DetectAsync(pipe.Reader, cancel.Token).AsTask());
    }
}
