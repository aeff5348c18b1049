using MeshGuard.Proxy.Protocols;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http1;
using Yarp.ReverseProxy.Forwarder;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// To the local app: the caller's request with its Host, minus forgeable mesh headers, plus
/// x-forwarded-client-cert naming the verified caller, at the canonical target authorization decided on. The app's response loses the headers it declared hop-by-hop.
/// </summary>
internal sealed class InboundTransformer(ForwardedHeaders forwardedHeaders) : HttpTransformer
{
    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        var authorized = AuthorizedRequest.Of(httpContext);
        MeshHeaders.RemoveForgeable(httpContext.Request.Headers, forwardedHeaders);
        // Exactly the target policy decided on, whatever the server or Uri would have made of the raw one. Set before
        // the copy of the request, which builds an address of its own only where none is set.
        proxyRequest.RequestUri = authorized.AppUri(destinationPrefix);
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.Headers.Host = httpContext.Request.Host.Value;
        var peer = httpContext.Features.Get<PeerIdentityFeature>()!;
        proxyRequest.Headers.TryAddWithoutValidation(MeshHeaders.ForwardedClientCert, (IEnumerable<string?>)peer.ForwardedClientCert);
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var proceed = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        // Only an HTTP/1.x app can declare hop-by-hop response headers; HTTP/2 has no Connection header.
        if (proxyResponse is { Version.Major: 1 } && proxyResponse.Headers.NonValidated.TryGetValues("Connection", out var connection))
        {
            foreach (var value in connection)
            {
                HopByHopFields.RemoveNamed(httpContext.Response.Headers, value);
            }
        }
        return proceed;
    }
}
