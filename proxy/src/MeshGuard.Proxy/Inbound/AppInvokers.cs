using System.Net;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// The general path's clients to the app (YARP, for requests with <c>Expect</c>, upgrades and CONNECT). To an HTTP/1.1
/// app one serves every caller (<see cref="Shared"/>): each of its connections carries one request at a time. To an
/// HTTP/2 app the handler multiplexes requests on shared connections, so each calling identity has its own
/// (<see cref="PerCaller{T}"/>), as <see cref="AppHttp2Leg"/> keeps its pools.
/// </summary>
internal sealed class AppInvokers : IDisposable
{
    /// <summary>The service key under which <see cref="Shared"/> is also registered (the plain HTTP traffic leaving the mesh takes it).</summary>
    public const string SharedKey = "app";

    private readonly PerCaller<HttpMessageInvoker> _invokers = new(Create);

    /// <summary>The client every caller shares (an HTTP/1.1 app; the plain HTTP traffic leaving the mesh).</summary>
    public HttpMessageInvoker Shared => _invokers.Shared;

    /// <summary>The client for <paramref name="caller"/>'s requests to an HTTP/2 app.</summary>
    public HttpMessageInvoker For(string caller) => _invokers.For(caller);

    private static HttpMessageInvoker Create() => new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        ActivityHeadersPropagator = null,
        ConnectTimeout = TimeSpan.FromSeconds(5),
    }, disposeHandler: true);

    public void Dispose()
    {
        foreach (var invoker in _invokers.All)
        {
            invoker.Dispose();
        }
    }
}
