using System.Buffers.Binary;
using System.Net.Security;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// Opaque TCP between sidecars: the caller's sidecar negotiates ALPN <c>meshguard/tcp</c> on the mTLS
/// connection and sends the destination app port as two big-endian bytes; then bytes flow as they are.
/// Authorization happens once, for the connection.
/// </summary>
internal static class OpaqueTcp
{
    public static readonly SslApplicationProtocol Protocol = new("meshguard/tcp");

    public const int PreambleLength = 2;

    public static void WritePreamble(Span<byte> buffer, int port) => BinaryPrimitives.WriteUInt16BigEndian(buffer, (ushort)port);

    public static int ReadPreamble(ReadOnlySpan<byte> buffer) => BinaryPrimitives.ReadUInt16BigEndian(buffer);

    /// <summary>Copies both ways until either side closes, then closes both.</summary>
    public static async Task PipeAsync(Stream a, Stream b, CancellationToken cancellation)
    {
        using var done = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var forward = CopyAsync(a, b, done.Token);
        var backward = CopyAsync(b, a, done.Token);
        await Task.WhenAny(forward, backward);
        await done.CancelAsync();
        try
        {
            await Task.WhenAll(forward, backward);
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
        }
    }

    private static async Task CopyAsync(Stream from, Stream to, CancellationToken cancellation)
    {
        try
        {
            // CopyToAsync rents one pooled buffer for the whole copy.
            await from.CopyToAsync(to, 16 * 1024, cancellation);
            await to.FlushAsync(cancellation);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
        }
    }
}
