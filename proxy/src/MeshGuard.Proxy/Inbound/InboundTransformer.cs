using Yarp.ReverseProxy.Forwarder;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// To the local app: the caller's request with its Host, minus forgeable mesh headers, plus
/// x-forwarded-client-cert naming the verified caller.
/// </summary>
internal sealed class InboundTransformer : HttpTransformer
{
    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        MeshHeaders.RemoveForgeable(httpContext.Request.Headers);
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.Headers.Host = httpContext.Request.Host.Value;
        var peer = httpContext.Features.Get<PeerIdentityFeature>()!;
        proxyRequest.Headers.TryAddWithoutValidation(MeshHeaders.ForwardedClientCert, (IEnumerable<string?>)peer.ForwardedClientCert);
    }
}
