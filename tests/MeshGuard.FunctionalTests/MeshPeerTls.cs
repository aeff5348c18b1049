using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A mesh peer's TLS 1.3 connection straight to a sidecar's inbound port, presenting <c>svid</c> and offering one
/// application protocol (HTTP/1.1, HTTP/2 or meshguard/tcp). The server's identity is not under test here.
/// </summary>
internal sealed class MeshPeerTls : IAsyncDisposable
{
    private readonly TcpClient _tcp;

    private MeshPeerTls(TcpClient tcp, SslStream stream)
    {
        _tcp = tcp;
        Stream = stream;
    }

    public SslStream Stream { get; }

    public static async Task<MeshPeerTls> ConnectAsync(int port, X509Certificate2 svid, X509Certificate2Collection chain, SslApplicationProtocol protocol)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        var tls = new SslStream(tcp.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "mesh.local",
            EnabledSslProtocols = SslProtocols.Tls13,
            ApplicationProtocols = [protocol],
            ClientCertificateContext = SslStreamCertificateContext.Create(svid, chain, offline: true),
            RemoteCertificateValidationCallback = static (_, _, _, _) => true,
        });
        return new MeshPeerTls(tcp, tls);
    }

    public async ValueTask DisposeAsync()
    {
        await Stream.DisposeAsync();
        _tcp.Dispose();
    }
}
