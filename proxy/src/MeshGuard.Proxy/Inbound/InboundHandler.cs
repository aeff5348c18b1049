using System.Net;
using Yarp.ReverseProxy.Forwarder;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// The inbound listener's request handler. The caller already passed the mTLS handshake (an SVID of our
/// trust domain); its identity is on the connection. The request is forwarded to the local app over one
/// pooled plain-HTTP handler.
/// </summary>
internal sealed partial class InboundHandler(
    IHttpForwarder forwarder, ProxySettings settings, [FromKeyedServices(InboundHandler.InvokerKey)] HttpMessageInvoker invoker, ILogger<InboundHandler> logger)
{
    public const string InvokerKey = "app";

    private static readonly ForwarderRequestConfig RequestConfig = new()
    {
        Version = HttpVersion.Version11,
        VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        ActivityTimeout = TimeSpan.FromSeconds(100),
    };

    private static readonly InboundTransformer Transformer = new();

    private readonly string _appPrefix = $"http://{(settings.AppAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{settings.AppAddress}]" : settings.AppAddress)}:{settings.AppPort}";

    public async Task HandleAsync(HttpContext context)
    {
        if (context.Features.Get<PeerIdentityFeature>() is null)
        {
            // Cannot happen through the TLS listener; refuse rather than forward an unauthenticated request.
            await Outbound.OutboundHandler.RefuseAsync(context, StatusCodes.Status403Forbidden, "forbidden\n");
            return;
        }
        var error = await forwarder.SendAsync(context, _appPrefix, invoker, RequestConfig, Transformer);
        if (error != ForwarderError.None)
        {
            LogAppFailed(logger, error.ToString(), context.GetForwarderErrorFeature()?.Exception?.Message ?? "");
        }
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "inbound: forwarding to the app failed: {Error} {Detail}")]
    private static partial void LogAppFailed(ILogger logger, string error, string detail);
}
