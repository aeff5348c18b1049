using System.Buffers;
using System.Net;
using MeshGuard.Tests.Common;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// An app for big bodies that keeps none of them: <c>POST /sink</c> counts what it reads, <c>GET /source?bytes=N</c>
/// writes N bytes in 64 KiB pieces and counts what it managed to write (a caller that stops reading stalls it).
/// </summary>
public sealed class BulkApp : IAsyncDisposable
{
    private const int Piece = 64 * 1024;
    private readonly WebApplication _app;
    private long _received;
    private long _written;

    private BulkApp(WebApplication app) => _app = app;

    public int Port { get; private set; }

    public long Received => Interlocked.Read(ref _received);

    public long Written => Interlocked.Read(ref _written);

    public static async Task<BulkApp> StartAsync()
    {
        var builder = LoopbackApp.CreateBuilder();
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = null);
        var app = builder.Build();
        var bulk = new BulkApp(app);
        app.MapPost("/sink", async context =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent(Piece);
            int read;
            while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
            {
                Interlocked.Add(ref bulk._received, read);
            }
            ArrayPool<byte>.Shared.Return(buffer);
            await context.Response.WriteAsync(bulk.Received.ToString(System.Globalization.CultureInfo.InvariantCulture));
        });
        app.MapGet("/source", async context =>
        {
            var total = long.Parse(context.Request.Query["bytes"]!, System.Globalization.CultureInfo.InvariantCulture);
            context.Response.ContentLength = total;
            var piece = new byte[Piece];
            Array.Fill(piece, (byte)'d');
            try
            {
                for (long sent = 0; sent < total; sent += Piece)
                {
                    var length = (int)Math.Min(Piece, total - sent);
                    await context.Response.Body.WriteAsync(piece.AsMemory(0, length), context.RequestAborted);
                    Interlocked.Add(ref bulk._written, length);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException)
            {
                // The caller went away mid-body.
            }
        });
        var address = await LoopbackApp.StartAsync(app);
        bulk.Port = new Uri(address).Port;
        return bulk;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
