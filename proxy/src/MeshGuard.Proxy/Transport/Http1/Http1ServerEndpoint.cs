using MeshGuard.Proxy.Transport.Http2;
using Microsoft.AspNetCore.Connections;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>
/// A port whose HTTP/1.1 connections the sidecar's own server takes first (<see cref="Http1ServerConnection"/>),
/// with Kestrel's HTTP/1.1 server behind it for the rest of a connection once a request is not plain. Its handler
/// and logger come from the host's services at the first connection, as <see cref="Http2ServerEndpoint"/>'s do.
/// </summary>
internal sealed class Http1ServerEndpoint(Func<Http2RequestHandler> application, Func<ILogger> logger, Http1ServerLimits limits)
{
    private Http2RequestHandler? _application;
    private ILogger? _logger;

    /// <summary>Serves <paramref name="connection"/> until it ends, handing it to <paramref name="kestrel"/> at the first request that is not plain.</summary>
    public async Task ServeAsync(ConnectionContext connection, ConnectionDelegate kestrel)
    {
        _application ??= application();
        _logger ??= logger();
        bool handOver;
        using (var server = new Http1ServerConnection(connection, _application, limits, _logger))
        {
            handOver = await server.RunAsync();
        }
        if (handOver)
        {
            await kestrel(connection);
        }
    }
}
