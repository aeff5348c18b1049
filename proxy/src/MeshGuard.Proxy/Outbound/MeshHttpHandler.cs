using System.Net.Security;
using MeshGuard.Proxy.Identity;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// The one pooled handler for sidecar-to-sidecar traffic: HTTP/2 over mutual TLS, many requests multiplexed
/// on each connection. TLS is originated in the connect callback so it can demand the identity the service
/// directory lists for the endpoint being dialled.
/// </summary>
internal static class MeshHttpHandler
{
    private static readonly List<SslApplicationProtocol> Http2Only = [SslApplicationProtocol.Http2];

    /// <summary>Per-request option naming the identity the server at the endpoint must present.</summary>
    public static readonly HttpRequestOptionsKey<SpiffeId> ExpectedServer = new("meshguard.expected-server");

    public static HttpMessageInvoker Create(SpiffeConnector connector) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = System.Net.DecompressionMethods.None,
        UseCookies = false,
        EnableMultipleHttp2Connections = true,
        ActivityHeadersPropagator = null,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
        // Built once per process, so capturing the connector here costs nothing per request.
        ConnectCallback = (context, cancellation) =>
            context.InitialRequestMessage.Options.TryGetValue(ExpectedServer, out var expected)
                ? connector.ConnectAsync(context.DnsEndPoint, expected, Http2Only, cancellation)
                : throw new InvalidOperationException("mesh request without an expected server identity"),
    }, disposeHandler: true);
}
