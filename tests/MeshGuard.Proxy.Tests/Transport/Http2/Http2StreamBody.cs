using MeshGuard.Proxy.Transport.Http2;

namespace MeshGuard.Proxy.Tests.Transport.Http2;

internal static class Http2StreamBody
{
    /// <summary>Reads an answer's body to its end, giving each part back as window as the leg does; throws as the stream fails.</summary>
    public static async Task<byte[]> ReadToEndAsync(this Http2ClientStream stream)
    {
        var received = new MemoryStream();
        while (true)
        {
            var result = await stream.ReadBodyAsync();
            foreach (var segment in result.Buffer)
            {
                received.Write(segment.Span);
            }
            stream.Consumed(result);
            if (result.IsCompleted)
            {
                return received.ToArray();
            }
        }
    }
}
