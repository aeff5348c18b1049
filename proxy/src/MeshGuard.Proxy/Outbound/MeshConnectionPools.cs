using System.Collections.Concurrent;
using System.Net.Security;
using MeshGuard.Proxy.Identity;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// Sidecar-to-sidecar connection pools, one per server identity: HTTP/2 over mutual TLS, many requests
/// multiplexed on each connection. A pooled connection is only ever reused for requests that expect the
/// identity it was verified against: keyed by address alone, a connection to orders' sidecar could carry
/// a request meant for payments if the directory listed that address for both.
/// </summary>
internal sealed class MeshConnectionPools(SpiffeConnector connector) : IDisposable
{
    private static readonly List<SslApplicationProtocol> Http2Only = [SslApplicationProtocol.Http2];

    private readonly ConcurrentDictionary<SpiffeId, HttpMessageInvoker> _pools = new();

    /// <summary>The pool whose connections all proved to be <paramref name="expectedServer"/>. Called when a table arrives, not per request.</summary>
    public HttpMessageInvoker For(SpiffeId expectedServer) =>
        _pools.GetOrAdd(expectedServer, static (id, connector) => Create(connector, id), connector);

    private static HttpMessageInvoker Create(SpiffeConnector connector, SpiffeId expectedServer) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = System.Net.DecompressionMethods.None,
        UseCookies = false,
        EnableMultipleHttp2Connections = true,
        ActivityHeadersPropagator = null,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
        // TLS is originated here, not by the handler, so the handshake can demand this pool's identity and
        // present the SVID of the moment; the handler then speaks HTTP/2 (prior knowledge) over the stream.
        ConnectCallback = (context, cancellation) => connector.ConnectAsync(context.DnsEndPoint, expectedServer, Http2Only, cancellation),
    }, disposeHandler: true);

    public void Dispose()
    {
        foreach (var pool in _pools.Values)
        {
            pool.Dispose();
        }
    }
}
