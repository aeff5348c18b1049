using MeshGuard.Proxy.Transport.Http2;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.Proxy.Telemetry;

/// <summary>
/// While telemetry export is on, the requests the sidecar's own servers read pass ASP.NET Core's hosting layer as
/// Kestrel's requests do, so its server spans (continuing the caller's trace context) and its http.server metrics
/// cover them: this wraps the host's server (Kestrel, which still serves the ports' other requests) and keeps the
/// application it is started with as a handler of the own servers' shape. Export off, it is not registered, and the
/// own servers call the sidecar's handlers directly.
/// </summary>
internal sealed class HostingLayerServer(IServer kestrel) : IServer
{
    /// <summary>The hosting layer's application as the own servers call it; set when the host starts its server.</summary>
    public Http2RequestHandler? Handler { get; private set; }

    public IFeatureCollection Features => kestrel.Features;

    /// <summary>The own servers' handler: through the hosting layer where it is registered, else <paramref name="direct"/>.</summary>
    public static Http2RequestHandler Choose(IServiceProvider services, Http2RequestHandler direct) =>
        services.GetService<HostingLayerServer>()?.Handler ?? direct;

    /// <summary>Puts the wrapper in place of the server <paramref name="services"/> registered (Kestrel).</summary>
    public static void Register(IServiceCollection services)
    {
        var kestrel = services.Last(d => d.ServiceType == typeof(IServer));
        services.Remove(kestrel);
        services.AddSingleton(provider => new HostingLayerServer(kestrel.ImplementationType is { } type
            ? (IServer)ActivatorUtilities.CreateInstance(provider, type)
            : kestrel.ImplementationFactory is { } factory ? (IServer)factory(provider) : (IServer)kestrel.ImplementationInstance!));
        services.AddSingleton<IServer>(provider => provider.GetRequiredService<HostingLayerServer>());
    }

    public Task StartAsync<TContext>(IHttpApplication<TContext> application, CancellationToken cancellationToken)
        where TContext : notnull
    {
        Handler = new Hosted<TContext>(application).HandleAsync;
        return kestrel.StartAsync(application, cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => kestrel.StopAsync(cancellationToken);

    public void Dispose() => kestrel.Dispose();

    private sealed class Hosted<TContext>(IHttpApplication<TContext> application)
        where TContext : notnull
    {
        public async ValueTask<bool> HandleAsync(HttpContext context)
        {
            // The hosting layer makes its own context over the same features: the request and its answer are the own
            // server's; the layer adds its activity, logging scope and metrics around the pipeline.
            var hosted = application.CreateContext(context.Features);
            Exception? failure = null;
            try
            {
                await application.ProcessRequestAsync(hosted);
            }
            catch (Exception e)
            {
                failure = e;
                throw;
            }
            finally
            {
                application.DisposeContext(hosted, failure);
            }
            return true;
        }
    }
}
