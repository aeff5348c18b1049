using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using MeshGuard.Proxy.Transport.Http1;

namespace MeshGuard.Proxy.Tests.Transport;

public sealed class Http1HeadWriterTests
{
    [Fact]
    public async Task TheHeadIsWrittenAsOctetsInOrder()
    {
        var pipe = new Pipe();
        Http1HeadWriter.WriteRequestLine(pipe.Writer, "GET", "/orders/1", "?a=b");
        Http1HeadWriter.WriteField(pipe.Writer, "Host", "orders");
        Http1HeadWriter.WriteField(pipe.Writer, "X-Latin", "caf\u00e9");
        Http1HeadWriter.WriteContentLength(pipe.Writer, 1234567890123);
        Http1HeadWriter.WriteChunkedFraming(pipe.Writer);
        Http1HeadWriter.EndHead(pipe.Writer);
        await pipe.Writer.CompleteAsync();
        var bytes = (await pipe.Reader.ReadAsync()).Buffer.ToArray();
        Assert.Equal("GET /orders/1?a=b HTTP/1.1\r\nHost: orders\r\nX-Latin: caf\u00e9\r\nContent-Length: 1234567890123\r\nTransfer-Encoding: chunked\r\n\r\n", Encoding.Latin1.GetString(bytes));
        Assert.Equal(0xe9, bytes[Array.IndexOf(bytes, (byte)'f') + 1]);
    }

    [Theory]
    [InlineData("a\r\nX-Injected: 1")]
    [InlineData("a\nb")]
    [InlineData("a\rb")]
    [InlineData("a\0b")]
    [InlineData("a\u007fb")]
    [InlineData("\u0100")]
    [InlineData("\u20ac")]
    public void AValueThatWouldSplitOrChangeTheRequestCannotBeWritten(string value) => Assert.False(Http1HeadWriter.IsFieldValue(value));

    [Theory]
    [InlineData("plain")]
    [InlineData("with\ttab and space")]
    [InlineData("obs-text \u00e9\u00ff")]
    [InlineData("")]
    public void VisibleTextTabAndObsTextCanBeWritten(string value) => Assert.True(Http1HeadWriter.IsFieldValue(value));

    [Theory]
    [InlineData("x-ok", true)]
    [InlineData("x ok", false)]
    [InlineData("x:ok", false)]
    [InlineData(":authority", false)]
    [InlineData("", false)]
    public void OnlyTokensAreFieldNames(string name, bool token) => Assert.Equal(token, Http1HeadWriter.IsToken(name));
}
