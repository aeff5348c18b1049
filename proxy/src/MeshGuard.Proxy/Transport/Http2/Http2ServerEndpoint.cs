using Microsoft.AspNetCore.Connections;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// A port whose HTTP/2 connections the sidecar's own server takes (<see cref="Http2ServerConnection"/>): the inbound
/// port's TLS connections and the outbound port's cleartext ones from the app. Its handler and logger come from the
/// host's services at the first connection, which exist by then though not yet when Kestrel's listeners are set up.
/// </summary>
internal sealed class Http2ServerEndpoint(Func<Http2RequestHandler> application, Func<ILogger> logger, Http2ServerLimits limits)
{
    private Http2RequestHandler? _application;
    private ILogger? _logger;

    /// <summary>Serves <paramref name="connection"/>, framed on <paramref name="transport"/>, until it ends.</summary>
    public async Task ServeAsync(ConnectionContext connection, Stream transport)
    {
        _application ??= application();
        _logger ??= logger();
        using var server = new Http2ServerConnection(connection, transport, _application, limits, _logger);
        await server.RunAsync();
    }

    /// <summary>Kestrel's shape of a handler of the own server's shape: a handler that ended at once costs no Task.</summary>
    public static Task AsKestrelTask(ValueTask<bool> handling)
    {
        if (handling.IsCompletedSuccessfully)
        {
            _ = handling.Result; // takes the result: a pooled call's box goes back
            return Task.CompletedTask;
        }
        return handling.AsTask();
    }

    /// <summary>The own server's shape of a step written as a Task (a refusal's answer, a forward out of the mesh).</summary>
    public static async ValueTask<bool> Awaited(Task task)
    {
        await task;
        return true;
    }
}
