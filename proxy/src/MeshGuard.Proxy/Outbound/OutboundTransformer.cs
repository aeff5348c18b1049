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

    /// <summary>
    /// The destination's response reached this request (YARP calls this with null when it did not). YARP may
    /// still report a request-body error after a complete response, when the callee answered before reading
    /// the body (a refusal does) and reset the stream: that answer stands and must not be replaced by a 502.
    /// </summary>
    public override ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        if (proxyResponse is not null)
        {
            httpContext.Features.Set(DestinationAnswer.Instance);
        }
        return base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
    }

    public static bool DestinationAnswered(HttpContext context) => context.Features.Get<DestinationAnswer>() is not null;

    private sealed class DestinationAnswer
    {
        public static readonly DestinationAnswer Instance = new();
    }
}
