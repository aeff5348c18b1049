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
    private readonly TcpClient _tcp;
    private readonly Stream _stream;

    private RawConnection(TcpClient tcp, Stream stream)
    {
        _tcp = tcp;
        _stream = stream;
    }

    public static async Task<RawConnection> OpenAsync(int port)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        return new RawConnection(tcp, tcp.GetStream());
    }

    /// <summary>TLS 1.3 with <paramref name="svid"/> as the client certificate, speaking HTTP/1.1 (ALPN).</summary>
    public static async Task<RawConnection> OpenTlsAsync(int port, X509Certificate2 svid, X509Certificate2Collection chain)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        var tls = new SslStream(tcp.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "mesh.local",
            EnabledSslProtocols = SslProtocols.Tls13,
            ApplicationProtocols = [SslApplicationProtocol.Http11],
            ClientCertificateContext = SslStreamCertificateContext.Create(svid, chain, offline: true),
            // The server's identity is not under test here.
            RemoteCertificateValidationCallback = static (_, _, _, _) => true,
        });
        return new RawConnection(tcp, tls);
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
        _tcp.Dispose();
    }
}
