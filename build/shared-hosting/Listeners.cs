using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace MeshGuard.Hosting;

/// <summary>
/// Which listener an endpoint belongs to, decided by the port the connection arrived on. The Host header is the
/// client's to write, so routing by it alone would let a peer of the bootstrap or gRPC port (or of a sidecar's data
/// port) reach the admin endpoints by naming the admin address. Shared by meshguard-cp and meshguard-proxy.
/// </summary>
internal static class Listeners
{
    /// <summary>
    /// Serves the endpoint only on connections to <paramref name="port"/>; where <paramref name="loopbackHost"/>, only
    /// under a loopback Host with that port too (a page of another site that points its own name at 127.0.0.1 is
    /// refused: DNS rebinding).
    /// </summary>
    public static TBuilder OnListener<TBuilder>(this TBuilder builder, int port, bool loopbackHost = false)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new ListenerPort(port, loopbackHost)).RequireHost($"*:{port}");

    /// <summary>
    /// After routing: a matched endpoint runs only on its own listener, and one that declares none is not served
    /// (fail closed). 404 on the wrong port (the endpoint does not exist there), 421 under a foreign Host.
    /// </summary>
    public static void UseListenerPorts(this IApplicationBuilder app) => app.Use(static (context, next) =>
    {
        if (context.GetEndpoint() is not { } endpoint)
        {
            return next(context);
        }
        if (endpoint.Metadata.GetMetadata<ListenerPort>() is not { } listener || context.Connection.LocalPort != listener.Port)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }
        if (listener.LoopbackHost && !IsLoopbackHost(context.Request.Host, listener.Port))
        {
            context.Response.StatusCode = StatusCodes.Status421MisdirectedRequest;
            return Task.CompletedTask;
        }
        return next(context);
    });

    /// <summary><c>127.0.0.1</c>, <c>localhost</c> or <c>[::1]</c>, with <paramref name="port"/>.</summary>
    public static bool IsLoopbackHost(HostString host, int port) =>
        host.Host is "127.0.0.1" or "localhost" or "[::1]" && host.Port == port;

    private sealed record ListenerPort(int Port, bool LoopbackHost);
}
