using System.Net;
using Grpc.Core;
using MeshGuard.FunctionalTests.Grpc;
using MeshGuard.Tests.Common;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshGuard.FunctionalTests;

/// <summary>meshtest.Echo served by Grpc.AspNetCore over cleartext HTTP/2: the .NET side of the gRPC tests.</summary>
public sealed class GrpcEchoApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private GrpcEchoApp(WebApplication app) => _app = app;

    public int Port { get; private set; }

    /// <summary>Methods that reached this server, in order.</summary>
    public static System.Collections.Concurrent.ConcurrentQueue<string> Served { get; } = new();

    public static async Task<GrpcEchoApp> StartAsync()
    {
        var builder = LoopbackApp.CreateBuilder(HttpProtocols.Http2);
        builder.Services.AddGrpc();
        var app = builder.Build();
        app.MapGrpcService<EchoService>();
        var address = await LoopbackApp.StartAsync(app);
        return new GrpcEchoApp(app) { Port = new Uri(address).Port };
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private sealed class EchoService : Echo.EchoBase
    {
        public override async Task<EchoReply> Unary(EchoRequest request, ServerCallContext context)
        {
            Served.Enqueue("Unary");
            context.ResponseTrailers.Add("x-served-by", "dotnet");
            context.ResponseTrailers.Add("x-caller", context.RequestHeaders.GetValue("x-forwarded-client-cert") ?? "");
            if (request.DelayMs > 0)
            {
                await Task.Delay(request.DelayMs, context.CancellationToken);
            }
            if (request.Status != 0)
            {
                throw new RpcException(new Status((StatusCode)request.Status, $"asked for status {request.Status}"));
            }
            return new EchoReply { Text = "net:" + request.Text };
        }

        public override async Task ServerStream(EchoRequest request, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
        {
            Served.Enqueue("ServerStream");
            for (var i = 0; i < request.Count; i++)
            {
                await responseStream.WriteAsync(new EchoReply { Text = $"net:{request.Text}:{i}" });
            }
        }

        public override async Task<EchoReply> ClientStream(IAsyncStreamReader<EchoRequest> requestStream, ServerCallContext context)
        {
            Served.Enqueue("ClientStream");
            var texts = new List<string>();
            await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
            {
                texts.Add(request.Text);
            }
            return new EchoReply { Text = "net:" + string.Join('+', texts) };
        }

        public override async Task Bidi(IAsyncStreamReader<EchoRequest> requestStream, IServerStreamWriter<EchoReply> responseStream, ServerCallContext context)
        {
            Served.Enqueue("Bidi");
            await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
            {
                await responseStream.WriteAsync(new EchoReply { Text = "net:" + request.Text });
            }
        }

        public override Task<EchoReply> Admin(EchoRequest request, ServerCallContext context)
        {
            Served.Enqueue("Admin");
            return Task.FromResult(new EchoReply { Text = "net:admin" });
        }
    }
}
