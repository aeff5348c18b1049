using System.IO.Pipelines;
using System.Text;
using MeshGuard.Proxy.Outbound;

namespace MeshGuard.Proxy.Tests.Outbound;

public sealed class AppProtocolDetectionTests
{
    private const string Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    [Theory]
    [InlineData(new[] { Preface + "\0\0\0\x04" }, true)]
    [InlineData(new[] { "PRI * HT", "TP/2.0\r\n\r\n", "SM\r\n\r\n" }, true)]
    [InlineData(new[] { "GET / HTTP/1.1\r\nHost: orders\r\n\r\n" }, false)]
    [InlineData(new[] { "PRI * HTTP/1.1\r\n\r\n" }, false)]
    [InlineData(new[] { "P", "OST /orders HTTP/1.1\r\n" }, false)]
    public async Task ThePrefaceSelectsHttp2AnythingElseHttp11AndNoByteIsConsumed(string[] chunks, bool http2)
    {
        var pipe = new Pipe();
        var detection = AppProtocolDetection.StartsWithHttp2PrefaceAsync(pipe.Reader, CancellationToken.None).AsTask();
        for (var i = 0; i < chunks.Length; i++)
        {
            // Every chunk but the last is a prefix of the preface: nothing can be decided yet.
            Assert.False(detection.IsCompleted, "decided before the bytes that decide arrived");
            await pipe.Writer.WriteAsync(Encoding.Latin1.GetBytes(chunks[i]));
            await Task.Yield();
        }
        Assert.Equal(http2, await detection.WaitAsync(TimeSpan.FromSeconds(5)));

        // The protocol chosen afterwards reads every byte from the start.
        await pipe.Writer.CompleteAsync();
        var all = new MemoryStream();
        await pipe.Reader.CopyToAsync(all);
        Assert.Equal(string.Concat(chunks), Encoding.Latin1.GetString(all.ToArray()));
    }

    [Fact]
    public async Task AConnectionThatEndsInsideThePrefaceIsNotHttp2()
    {
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync("PRI * HTTP/2"u8.ToArray());
        await pipe.Writer.CompleteAsync();
        Assert.False(await AppProtocolDetection.StartsWithHttp2PrefaceAsync(pipe.Reader, CancellationToken.None));
    }

    [Fact]
    public async Task DetectionWaitingForBytesStopsWhenCancelled()
    {
        var pipe = new Pipe();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => AppProtocolDetection.StartsWithHttp2PrefaceAsync(pipe.Reader, cancel.Token).AsTask());
    }
}
