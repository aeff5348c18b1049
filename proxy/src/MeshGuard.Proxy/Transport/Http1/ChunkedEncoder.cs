using System.Buffers;
using System.IO.Pipelines;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>HTTP/1.1 chunked framing for a body whose length is not known up front (RFC 9112 section 7.1).</summary>
internal static class ChunkedEncoder
{
    public static void WriteChunkStart(PipeWriter writer, long length)
    {
        var span = writer.GetSpan(18);
        length.TryFormat(span, out var digits, "x", System.Globalization.CultureInfo.InvariantCulture);
        span[digits] = (byte)'\r';
        span[digits + 1] = (byte)'\n';
        writer.Advance(digits + 2);
    }

    public static void WriteChunkEnd(PipeWriter writer) => writer.Write("\r\n"u8);

    public static void WriteLastChunk(PipeWriter writer) => writer.Write("0\r\n\r\n"u8);
}
