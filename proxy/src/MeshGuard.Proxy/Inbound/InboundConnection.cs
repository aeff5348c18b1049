using MeshGuard.Proxy.Authorization;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Limits;
using MeshGuard.Proxy.Telemetry;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http1;
using MeshGuard.Proxy.Transport.Http2;
using MeshGuard.Spiffe;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// The inbound listener's TLS and connection setup: each handshake takes the TLS options of the current
/// SVID (built once per rotation), requires a client SVID, and the peer's SPIFFE ID is read once per
/// connection and published as a <see cref="PeerIdentityFeature"/>, beside the connection's
/// <see cref="PrematureResetBudget"/>. A peer whose identity is revoked is closed
/// right after its handshake, and its connection is followed so that a later revocation closes it too.
/// </summary>
internal static class InboundConnection
{
    /// <summary>Handshakes within this, or the connection is closed.</summary>
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The inbound port on the sidecar's own transport (<see cref="InboundTlsTransport"/>, TLS done before Kestrel
    /// sees the connection): HTTP/2 peers are served by <see cref="Http2ServerConnection"/> on the TLS stream,
    /// HTTP/1.1 peers by Kestrel, opaque TCP by <see cref="OpaqueTcpInbound"/>.
    /// </summary>
    public static void ConfigureOwnTransport(ListenOptions listen, ICredentialSource credentials, TimeSpan headersTimeout)
    {
        listen.Protocols = HttpProtocols.Http1;
        var http2 = new Http2Server(listen.ApplicationServices, headersTimeout);
        UseConnectionSetup(listen, credentials, http2.Serve);
    }

    private static void UseConnectionSetup(ListenOptions listen, ICredentialSource credentials, Func<ConnectionDelegate, ConnectionDelegate> http)
    {
        listen.Use(next =>
        {
            var opaqueTcp = listen.ApplicationServices.GetRequiredService<OpaqueTcpInbound>();
            var connections = listen.ApplicationServices.GetRequiredService<PeerConnections>();
            var config = listen.ApplicationServices.GetRequiredService<SidecarConfigSource>();
            var resets = listen.ApplicationServices.GetRequiredService<PrematureResetLimit>();
            var serve = http(next);
            return connection => OnConnectionAsync(connection, serve, credentials, opaqueTcp, connections, config, resets);
        });
    }

    private static async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next, ICredentialSource credentials, OpaqueTcpInbound opaqueTcp, PeerConnections connections, SidecarConfigSource config, PrematureResetLimit resets)
    {
        // Capture the certificate now: it was verified in the handshake and cannot change on this connection.
        var certificate = connection.Features.Get<ITlsConnectionFeature>()?.ClientCertificate;
        var peer = certificate?.GetSpiffeId();
        if (peer is null)
        {
            // The handshake requires a verified SVID, so this is unreachable; close rather than serve.
            connection.Abort();
            return;
        }
        var feature = new PeerIdentityFeature(peer, MeshHeaders.ForwardedClientCertValue(credentials.Current.IdText, peer.ToString()), connection.RemoteEndPoint?.ToString());
        // Tracked before the check, so that a revocation arriving in between still finds and closes it.
        using var tracked = connections.Track(connection, feature.Caller.Id);
        if (config.Current?.IsRevoked(feature.Caller.Id) == true)
        {
            connection.Abort(new ConnectionAbortedException($"{peer} is revoked"));
            return;
        }
        if (connection.Features.Get<ITlsApplicationProtocolFeature>()?.ApplicationProtocol.Span.SequenceEqual(OpaqueTcp.Protocol.Protocol.Span) == true)
        {
            await opaqueTcp.HandleAsync(connection, feature);
            return;
        }
        connection.Features.Set(feature);
        connection.Features.Set(resets.Open(connection, feature.Caller.Id));
        connection.Features.Set(ListenerRole.Inbound);
        await next(connection);
    }

    /// <summary>
    /// Serves a connection with the sidecar's own servers: HTTP/2 when the peer chose it, else HTTP/1.1, which hands
    /// the rest of a connection to Kestrel's server at the first request that is not plain.
    /// </summary>
    private sealed class Http2Server(IServiceProvider services, TimeSpan headersTimeout)
    {
        private readonly Http2ServerEndpoint _endpoint = new(
            () => HostingLayerServer.Choose(services, services.GetRequiredService<InboundHandler>().HandleRequestAsync),
            () => services.GetRequiredService<ILogger<Http2ServerConnection>>(),
            new Http2ServerLimits(headersTimeout, ListenerLimits.KeepAliveTimeout));

        private readonly Http1ServerEndpoint _http1 = new(
            () => HostingLayerServer.Choose(services, services.GetRequiredService<InboundHandler>().HandleRequestAsync),
            () => services.GetRequiredService<ILogger<Http1ServerConnection>>(),
            new Http1ServerLimits(headersTimeout, ListenerLimits.KeepAliveTimeout));

        public ConnectionDelegate Serve(ConnectionDelegate next) => connection =>
        {
            if (connection.Features.Get<ITlsApplicationProtocolFeature>()?.ApplicationProtocol.Span.SequenceEqual(System.Net.Security.SslApplicationProtocol.Http2.Protocol.Span) != true
                || connection.Features.Get<ISslStreamFeature>()?.SslStream is not { } tls)
            {
                return _http1.ServeAsync(connection, next);
            }
            return _endpoint.ServeAsync(connection, tls);
        };
    }
}
