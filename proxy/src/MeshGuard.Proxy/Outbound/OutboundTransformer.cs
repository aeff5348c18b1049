using MeshGuard.Proxy.Inbound;
using MeshGuard.Spiffe;
using Yarp.ReverseProxy.Forwarder;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// Copies the app's request, keeps its Host (the service name travels to the other side), drops headers
/// only a sidecar may set, and tells the connect callback which identity the endpoint must present.
/// One per endpoint, built when the service table arrives.
/// </summary>
internal sealed class OutboundTransformer(SpiffeId expectedServer) : HttpTransformer
{
    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        MeshHeaders.RemoveForgeable(httpContext.Request.Headers);
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.Headers.Host = httpContext.Request.Host.Value;
        proxyRequest.Options.Set(MeshHttpHandler.ExpectedServer, expectedServer);
    }
}
