using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshGuard.Tests.Common;

/// <summary>A web app a test runs in its own process: one Kestrel listener on 127.0.0.1, no logging.</summary>
public static class LoopbackApp
{
    /// <param name="protocols">The listener's HTTP versions; Kestrel's default when not given.</param>
    /// <param name="port">0 for any free port, or one to start again where an app was.</param>
    public static WebApplicationBuilder CreateBuilder(HttpProtocols? protocols = null, int port = 0)
    {
        var builder = MeshGuard.Hosting.ServerBuilder.Create();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, listen =>
        {
            if (protocols is { } chosen)
            {
                listen.Protocols = chosen;
            }
        }));
        return builder;
    }

    /// <summary>Starts the app and returns where it listens ("http://127.0.0.1:PORT").</summary>
    public static async Task<string> StartAsync(WebApplication app)
    {
        await app.StartAsync();
        return app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
    }
}
