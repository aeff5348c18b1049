using MeshGuard.Proxy.Inbound;
using MeshGuard.Proxy.Protocols;
using Yarp.ReverseProxy.Forwarder;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// Copies the app's request, keeps its Host (the service name travels to the other side), drops headers
/// only a sidecar may set or the app declared hop-by-hop, and marks a request the app sent as HTTP/2.
/// </summary>
internal sealed class OutboundTransformer : HttpTransformer
{
    public static readonly OutboundTransformer Instance = new();

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        var headers = httpContext.Request.Headers;
        MeshHeaders.RemoveForgeable(headers);
        if (headers.Connection is { Count: > 0 } connection)
        {
            ConnectionOptions.RemoveNamedHeaders(headers, connection);
        }
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.Headers.Host = httpContext.Request.Host.Value;
        if (HttpProtocol.IsHttp2(httpContext.Request.Protocol))
        {
            proxyRequest.Headers.TryAddWithoutValidation(MeshHeaders.OriginalProtocol, MeshHeaders.OriginalProtocolHttp2);
        }
    }
}
