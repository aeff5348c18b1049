using System.Buffers;
using System.Buffers.Binary;
using System.Net.Security;

namespace MeshGuard.Proxy.Transport;

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

    /// <summary>
    /// Copies both ways until either side closes, then closes both; returns the octets each side sent (read from it).
    /// They are counted as read, not once written: when one side closes, the other direction is cancelled, and a write
    /// that delivered its octets can still end in that cancellation (a reply the caller got, then closed on, would
    /// otherwise be recorded as never sent).
    /// </summary>
    public static async Task<(long AToB, long BToA)> PipeAsync(Stream a, Stream b, CancellationToken cancellation)
    {
        using var done = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var forward = CopyAsync(a, b, done.Token);
        var backward = CopyAsync(b, a, done.Token);
        await Task.WhenAny(forward, backward);
        await done.CancelAsync();
        return (await forward, await backward);
    }

    private static async Task<long> CopyAsync(Stream from, Stream to, CancellationToken cancellation)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        long copied = 0;
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, cancellation)) > 0)
            {
                copied += read;
                await to.WriteAsync(buffer.AsMemory(0, read), cancellation);
            }
            await to.FlushAsync(cancellation);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or System.Net.Sockets.SocketException)
        {
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return copied;
    }
}
