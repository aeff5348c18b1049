using MeshGuard.Proxy.Authorization;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Limits;
using MeshGuard.Proxy.Transport;
using MeshGuard.Spiffe;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.Server.Kestrel.Https;

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
    public static void Configure(ListenOptions listen, ICredentialSource credentials, MeshGuard.Hosting.ConnectionLimit limit)
    {
        listen.Protocols = HttpProtocols.Http1AndHttp2;
        // Before TLS: a connection over the limit costs no handshake.
        limit.Apply(listen);
        listen.UseHttps(new TlsHandshakeCallbackOptions
        {
            OnConnection = static context => ValueTask.FromResult(((ICredentialSource)context.State!).Current.InboundTls),
            OnConnectionState = credentials,
            HandshakeTimeout = TimeSpan.FromSeconds(10),
        });
        listen.Use(next =>
        {
            var opaqueTcp = listen.ApplicationServices.GetRequiredService<OpaqueTcpInbound>();
            var connections = listen.ApplicationServices.GetRequiredService<PeerConnections>();
            var config = listen.ApplicationServices.GetRequiredService<SidecarConfigSource>();
            var resets = listen.ApplicationServices.GetRequiredService<PrematureResetLimit>();
            return connection => OnConnectionAsync(connection, next, credentials, opaqueTcp, connections, config, resets);
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
}
