using MeshGuard.Proxy.Inbound;
using MeshGuard.Proxy.Outbound.Resilience;
using MeshGuard.Proxy.Protocols;
using MeshGuard.Proxy.Transport;
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
        OutboundHandler.PrepareHeaders(httpContext);
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.Headers.Host = httpContext.Request.Host.Value;
        if (HttpProtocol.IsHttp2(httpContext.Request.Protocol))
        {
            proxyRequest.Headers.TryAddWithoutValidation(MeshHeaders.OriginalProtocol, MeshHeaders.OriginalProtocolHttp2);
        }
    }

    /// <summary>
    /// The destination's response reached this request (YARP calls this with null when it did not). A 502 or
    /// 503 answer to a request that may be tried again is held back (not copied) when the retry budget grants
    /// another try. Once an answer came, a request-body error YARP reports afterwards (the callee answered
    /// before reading the body, as a refusal does, and reset the stream) must not replace it with a 502.
    /// </summary>
    public override ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        if (proxyResponse is not null && httpContext.Features.Get<OutboundExchange>() is { } exchange)
        {
            var holdBack = proxyResponse.StatusCode is System.Net.HttpStatusCode.BadGateway or System.Net.HttpStatusCode.ServiceUnavailable
                && exchange.TryReserveRetry();
            exchange.MarkAnswered(holdBack);
            if (holdBack)
            {
                return ValueTask.FromResult(false);
            }
        }
        return base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
    }
}
