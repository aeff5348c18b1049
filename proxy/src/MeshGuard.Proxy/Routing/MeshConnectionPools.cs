using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Transport.Http2;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Routing;

/// <summary>
/// Sidecar-to-sidecar connection pools: HTTP/2 over mutual TLS, many requests multiplexed on each connection.
/// A pooled connection is only ever reused for requests that expect the identity it was verified against: keyed
/// by address alone, a connection to orders' sidecar could carry a request meant for payments if the directory
/// listed that address for both. <see cref="ForPeer"/> gives the sidecar's own HTTP/2 client, which carries
/// requests; <see cref="For"/> gives HttpClient pools for the rare paths YARP still forwards (upgrades,
/// 100-continue).
/// </summary>
internal sealed class MeshConnectionPools : IAsyncDisposable
{
    private static readonly List<SslApplicationProtocol> Http2Only = [SslApplicationProtocol.Http2];
    private static readonly TimeSpan TrimPeriod = TimeSpan.FromSeconds(15);

    private readonly SpiffeConnector _connector;
    private readonly ConcurrentDictionary<SpiffeId, HttpMessageInvoker> _pools = new();
    private readonly ConcurrentDictionary<(SpiffeId Identity, DnsEndPoint EndPoint), Http2ConnectionPool> _peers = new();
    private readonly ITimer _trimTimer;

    public MeshConnectionPools(SpiffeConnector connector, TimeProvider time)
    {
        _connector = connector;
        _trimTimer = time.CreateTimer(static state => _ = ((MeshConnectionPools)state!).TrimAsync(), this, TrimPeriod, TrimPeriod);
    }

    /// <summary>The HttpClient pool whose connections all proved to be <paramref name="expectedServer"/>. Called when a table arrives, not per request.</summary>
    public HttpMessageInvoker For(SpiffeId expectedServer) =>
        _pools.GetOrAdd(expectedServer, static (id, connector) => Create(connector, id), _connector);

    /// <summary>The HTTP/2 connections to the sidecar at <paramref name="endpoint"/>, which must prove to be <paramref name="expectedServer"/>.</summary>
    public Http2ConnectionPool ForPeer(SpiffeId expectedServer, DnsEndPoint endpoint) =>
        _peers.GetOrAdd((expectedServer, endpoint), static (key, connector) =>
            new Http2ConnectionPool(cancellation => connector.ConnectAsync(key.EndPoint, key.Identity, Http2Only, cancellation), key.Identity.ToString()), _connector);

    private async Task TrimAsync()
    {
        var now = Environment.TickCount64;
        foreach (var peer in _peers.Values)
        {
            await peer.TrimAsync(now);
        }
    }

    private static HttpMessageInvoker Create(SpiffeConnector connector, SpiffeId expectedServer) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        EnableMultipleHttp2Connections = true,
        ActivityHeadersPropagator = null,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
        // TLS is originated here, not by the handler, so the handshake can demand this pool's identity and
        // present the SVID of the moment; the handler then speaks HTTP/2 (prior knowledge) over the stream.
        ConnectCallback = (context, cancellation) => connector.ConnectAsync(context.DnsEndPoint, expectedServer, Http2Only, cancellation),
    }, disposeHandler: true);

    public async ValueTask DisposeAsync()
    {
        await _trimTimer.DisposeAsync();
        foreach (var pool in _pools.Values)
        {
            pool.Dispose();
        }
        foreach (var peer in _peers.Values)
        {
            await peer.DisposeAsync();
        }
    }
}
