using System.Net;
using System.Net.WebSockets;
using System.Text;
using MeshGuard.Tests.Common;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// ASP.NET Core's WebSocket server on any path: it first says who called (the x-forwarded-client-cert the
/// sidecar set) and with which HTTP version the upgrade arrived, then echoes every text message prefixed "echo:".
/// </summary>
public sealed class WebSocketApp : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _accepted;

    private WebSocketApp(WebApplication app) => _app = app;

    public int Port { get; private set; }

    public int Accepted => Volatile.Read(ref _accepted);

    public static async Task<WebSocketApp> StartAsync(HttpProtocols protocols)
    {
        var app = LoopbackApp.CreateBuilder(protocols).Build();
        var server = new WebSocketApp(app);
        app.UseWebSockets();
        app.Run(async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            Interlocked.Increment(ref server._accepted);
            var hello = $"hello {context.Request.Protocol} {context.Request.Headers["x-forwarded-client-cert"]}";
            await socket.SendAsync(Encoding.UTF8.GetBytes(hello), WebSocketMessageType.Text, true, context.RequestAborted);
            var buffer = new byte[4096];
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, context.RequestAborted);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", context.RequestAborted);
                    return;
                }
                var echo = Encoding.UTF8.GetBytes("echo:" + Encoding.UTF8.GetString(buffer, 0, result.Count));
                await socket.SendAsync(echo, WebSocketMessageType.Text, true, context.RequestAborted);
            }
        });
        var address = await LoopbackApp.StartAsync(app);
        server.Port = new Uri(address).Port;
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
