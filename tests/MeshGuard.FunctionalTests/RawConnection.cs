using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A hand-written HTTP/1.1 peer on a raw socket (or on TLS 1.3 with an SVID), for bytes no well-behaved
/// client would send: smuggling attempts, oversized or never-finished headers.
/// </summary>
internal sealed class RawConnection : IAsyncDisposable
{
    private readonly IAsyncDisposable _owner;
    private readonly Stream _stream;

    private RawConnection(IAsyncDisposable owner, Stream stream)
    {
        _owner = owner;
        _stream = stream;
    }

    public static async Task<RawConnection> OpenAsync(int port)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        return new RawConnection(new OwnedTcp(tcp), tcp.GetStream());
    }

    /// <summary>TLS 1.3 with <paramref name="svid"/> as the client certificate, speaking HTTP/1.1 (ALPN).</summary>
    public static async Task<RawConnection> OpenTlsAsync(int port, X509Certificate2 svid, X509Certificate2Collection chain)
    {
        var peer = await MeshPeerTls.ConnectAsync(port, svid, chain, SslApplicationProtocol.Http11);
        return new RawConnection(peer, peer.Stream);
    }

    public async Task SendAsync(string text)
    {
        await _stream.WriteAsync(Encoding.Latin1.GetBytes(text));
        await _stream.FlushAsync();
    }

    /// <summary>Everything the server sends until it closes the connection or <paramref name="wait"/> passes; and whether it closed.</summary>
    public async Task<(string Text, bool Closed)> ReadAsync(TimeSpan wait)
    {
        var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        using var limit = new CancellationTokenSource(wait);
        try
        {
            while (true)
            {
                var read = await _stream.ReadAsync(buffer, limit.Token);
                if (read == 0)
                {
                    return (Encoding.ASCII.GetString(received.ToArray()), true);
                }
                received.Write(buffer, 0, read);
            }
        }
        catch (OperationCanceledException)
        {
            return (Encoding.ASCII.GetString(received.ToArray()), false);
        }
        catch (IOException)
        {
            return (Encoding.ASCII.GetString(received.ToArray()), true);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        await _owner.DisposeAsync();
    }

    private sealed class OwnedTcp(TcpClient tcp) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            tcp.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
