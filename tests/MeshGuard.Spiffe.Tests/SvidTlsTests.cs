using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;

namespace MeshGuard.Spiffe.Tests;

public sealed class SvidTlsTests
{
    private static readonly SpiffeId Client = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/frontend");
    private static readonly SpiffeId Server = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/orders");

    [Fact]
    public async Task EveryConnectionBetweenTheSamePeersProvesBothIdentitiesAgain()
    {
        // A resumed TLS session skips both certificate checks and leaves the server without the caller's
        // certificate: a sidecar's second pooled connection to a peer once arrived with no identity at all.
        var ca = new TestCa();
        var serverSvid = ca.IssueSvid(Server.ToString());
        var clientSvid = ca.IssueSvid(Client.ToString());
        var serverOptions = SvidTls.CreateServerOptions(serverSvid, ca.Bundle, TimeProvider.System, SvidTls.Http2AndHttp11);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;

        for (var i = 0; i < 3; i++)
        {
            var accepted = AcceptOneAsync(listener, serverOptions);
            using var socket = new TcpClient();
            await socket.ConnectAsync(IPAddress.Loopback, port);
            await using var tls = new SslStream(socket.GetStream());
            var outcome = new ServerVerificationOutcome();
            await tls.AuthenticateAsClientAsync(SvidTls.CreateClientOptions(clientSvid, ca.Bundle, Server, TimeProvider.System, SvidTls.Http2AndHttp11, outcome));
            // Read the server's byte: TLS 1.3 session tickets travel after the handshake, so a later connection could use one.
            var buffer = new byte[1];
            Assert.Equal(1, await tls.ReadAsync(buffer));

            Assert.Equal(Server, outcome.PeerId);
            Assert.Equal(Client, await accepted.WaitAsync(TimeSpan.FromSeconds(10)));
        }
    }

    [Fact]
    public async Task AServerPresentingAnotherIdentityThanTheOneExpectedIsRefusedAtTheHandshake()
    {
        // Secure naming's last check, on the caller's side: an endpoint listed for payments that proves to be orders.
        var ca = new TestCa();
        var serverOptions = SvidTls.CreateServerOptions(ca.IssueSvid(Server.ToString()), ca.Bundle, TimeProvider.System, SvidTls.Http2AndHttp11);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepted = AcceptOneAsync(listener, serverOptions);
        using var socket = new TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        await using var tls = new SslStream(socket.GetStream());
        var outcome = new ServerVerificationOutcome();
        var payments = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/payments");
        await Assert.ThrowsAsync<System.Security.Authentication.AuthenticationException>(() =>
            tls.AuthenticateAsClientAsync(SvidTls.CreateClientOptions(ca.IssueSvid(Client.ToString()), ca.Bundle, payments, TimeProvider.System, SvidTls.Http2AndHttp11, outcome)));
        Assert.Equal($"server presented {Server} but {payments} was expected", outcome.Error);
        // In TLS 1.3 the server may finish its side before the client's refusal reaches it: its outcome is not under test.
        await Task.WhenAny(accepted, Task.Delay(TimeSpan.FromSeconds(10)));
    }

    private static async Task<SpiffeId?> AcceptOneAsync(TcpListener listener, SslServerAuthenticationOptions options)
    {
        using var socket = await listener.AcceptTcpClientAsync();
        await using var tls = new SslStream(socket.GetStream());
        await tls.AuthenticateAsServerAsync(options);
        await tls.WriteAsync(new byte[] { 1 });
        await tls.FlushAsync();
        return (tls.RemoteCertificate as X509Certificate2)?.GetSpiffeId();
    }
}
