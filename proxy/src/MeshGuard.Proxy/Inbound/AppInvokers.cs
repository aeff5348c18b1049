using System.Collections.Concurrent;
using System.Net;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// The general path's clients to the app (YARP, for requests with <c>Expect</c>, upgrades and CONNECT). To an HTTP/1.1
/// app one serves every caller: each of its connections carries one request at a time. To an HTTP/2 app there is one
/// per calling identity, as <see cref="AppHttp2Leg"/> keeps its pools: the handler multiplexes requests on shared
/// connections, and an app ends a whole connection for what one request on it did (Kestrel: a body trickled below its
/// minimum rate, counted across the connection), which must fail no other caller's request.
/// </summary>
internal sealed class AppInvokers : IDisposable
{
    /// <summary>Past this many calling identities, further ones share <see cref="Shared"/>.</summary>
    private const int MaxCallers = 1024;

    private readonly ConcurrentDictionary<string, HttpMessageInvoker> _perCaller = new(StringComparer.Ordinal);

    /// <summary>The client every caller shares (an HTTP/1.1 app; the plain HTTP traffic leaving the mesh).</summary>
    public HttpMessageInvoker Shared { get; } = Create();

    /// <summary>The client for <paramref name="caller"/>'s requests to an HTTP/2 app.</summary>
    public HttpMessageInvoker For(string caller)
    {
        if (_perCaller.TryGetValue(caller, out var invoker))
        {
            return invoker;
        }
        return _perCaller.Count >= MaxCallers ? Shared : _perCaller.GetOrAdd(caller, static _ => Create());
    }

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
        Shared.Dispose();
        foreach (var invoker in _perCaller.Values)
        {
            invoker.Dispose();
        }
    }
}
