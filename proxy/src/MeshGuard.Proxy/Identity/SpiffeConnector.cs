using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Identity;

/// <summary>
/// Opens TLS connections to SPIFFE peers: TCP connect, then a TLS 1.3 handshake with the current SVID (if
/// any) that succeeds only when the server presents the expected SPIFFE ID. Used as the ConnectCallback of
/// the handlers that talk to other sidecars and to the control plane, so each new connection picks up the
/// SVID of the moment while existing ones keep going.
/// </summary>
internal sealed class SpiffeConnector(ICredentialSource credentials, TimeProvider time)
{
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);
    private static readonly List<SslApplicationProtocol> Http11 = [SslApplicationProtocol.Http11];

    /// <summary>
    /// A client for the control plane's bootstrap port, which is server-only TLS: it presents no certificate and
    /// checks that the server is the control plane of <paramref name="controlPlaneBundle"/>'s trust domain. The
    /// client owns its handler.
    /// </summary>
    public HttpClient BootstrapClient(TrustBundle controlPlaneBundle, TimeSpan timeout)
    {
        var expected = MeshGuard.Contracts.ControlPlaneIdentity.For(controlPlaneBundle.TrustDomain);
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectCallback = (context, token) => ConnectAsync(context.DnsEndPoint, expected, Http11, svid: null, controlPlaneBundle, token),
        };
        return new HttpClient(handler, disposeHandler: true) { Timeout = timeout };
    }

    /// <summary>Connects as this workload, with its current SVID and trust bundle.</summary>
    public ValueTask<Stream> ConnectAsync(DnsEndPoint endpoint, SpiffeId expectedServer, List<SslApplicationProtocol> protocols, CancellationToken cancellation)
    {
        var current = credentials.Current;
        return ConnectAsync(endpoint, expectedServer, protocols, current.Svid, current.Bundle, cancellation);
    }

    public async ValueTask<Stream> ConnectAsync(
        DnsEndPoint endpoint, SpiffeId expectedServer, List<SslApplicationProtocol> protocols, X509Svid? svid, TrustBundle bundle, CancellationToken cancellation)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, cancellation);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        var outcome = new ServerVerificationOutcome();
        var options = SvidTls.CreateClientOptions(svid, bundle, expectedServer, time, protocols, outcome);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        timeout.CancelAfter(HandshakeTimeout);
        try
        {
            await tls.AuthenticateAsClientAsync(options, timeout.Token);
            return tls;
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException)
        {
            await tls.DisposeAsync();
            if (outcome.Error is not null)
            {
                throw new PeerIdentityException(endpoint, outcome.Error, e);
            }
            throw;
        }
    }
}

/// <summary>A server reached at an address was not the workload it had to be, or had no valid SVID.</summary>
internal sealed class PeerIdentityException(DnsEndPoint endpoint, string reason, Exception inner)
    : Exception($"{endpoint.Host}:{endpoint.Port}: {reason}", inner)
{
    public string Reason { get; } = reason;
}
