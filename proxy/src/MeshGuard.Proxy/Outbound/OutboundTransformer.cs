using MeshGuard.Proxy.Inbound;
using Yarp.ReverseProxy.Forwarder;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// Copies the app's request, keeps its Host (the service name travels to the other side), drops headers
/// only a sidecar may set, and marks a request the app sent as HTTP/2.
/// </summary>
internal sealed class OutboundTransformer : HttpTransformer
{
    public static readonly OutboundTransformer Instance = new();

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        MeshHeaders.RemoveForgeable(httpContext.Request.Headers);
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.Headers.Host = httpContext.Request.Host.Value;
        if (HttpProtocol.IsHttp2(httpContext.Request.Protocol))
        {
            proxyRequest.Headers.TryAddWithoutValidation(MeshHeaders.OriginalProtocol, MeshHeaders.OriginalProtocolHttp2);
        }
    }
}
