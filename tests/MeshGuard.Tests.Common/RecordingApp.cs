using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshGuard.Tests.Common;

/// <summary>
/// An app behind a sidecar that remembers every request it received (protocol, path, headers and body), so a
/// test can prove what reached the app and what never did. Two paths answer specially: <c>/trailers…</c> ends an
/// HTTP/2 response with the trailer <c>x-checksum</c>; <c>/hop…</c> answers with a header the response's
/// <c>Connection</c> names (hop-by-hop) beside an end-to-end one; <c>/abort…</c> reads the request, then drops the
/// connection without an answer. <see cref="Delay"/> holds every answer back for a while (a slow replica).
/// </summary>
public sealed class RecordingApp : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();

    private RecordingApp(WebApplication app) => _app = app;

    public int Port { get; private set; }

    /// <summary>How long each request waits, after it was recorded, before it is answered.</summary>
    public TimeSpan Delay { get; set; }

    /// <summary>The wait goes on after the caller gave up (an app busy with work it cannot cancel).</summary>
    public bool DelayIgnoresAborts { get; set; }

    public IReadOnlyCollection<RecordedRequest> Requests => _requests;

    /// <param name="protocols">HTTP/1.1 (the default) or HTTP/2 alone: Kestrel serves one of them on a cleartext port.</param>
    /// <param name="port">A port to listen on (to start an app again where it was); 0 for any free one.</param>
    public static async Task<RecordingApp> StartAsync(string name, HttpProtocols protocols = HttpProtocols.Http1, int port = 0)
    {
        var app = LoopbackApp.CreateBuilder(protocols, port).Build();
        var recording = new RecordingApp(app);
        app.Run(async context =>
        {
            var request = context.Request;
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var header in request.Headers)
            {
                headers[header.Key] = header.Value.ToString();
            }
            using var reader = new StreamReader(request.Body);
            var body = await reader.ReadToEndAsync(context.RequestAborted);
            var path = request.Path.Value ?? "";
            var rawTarget = context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget;
            recording._requests.Enqueue(new RecordedRequest(request.Method, path, headers, body, request.Protocol, rawTarget));
            if (recording.Delay > TimeSpan.Zero)
            {
                await Task.Delay(recording.Delay, recording.DelayIgnoresAborts ? CancellationToken.None : context.RequestAborted);
            }
            if (path.StartsWith("/abort", StringComparison.Ordinal))
            {
                context.Abort();
                return;
            }
            var response = context.Response;
            response.ContentType = "text/plain";
            if (path.StartsWith("/hop", StringComparison.Ordinal))
            {
                response.Headers.Connection = "x-resp-hop";
                response.Headers["x-resp-hop"] = "must not pass";
                response.Headers["x-resp-end"] = "passes";
            }
            await response.WriteAsync($"{name} {path}");
            // Kestrel sends trailers over HTTP/2 only.
            if (path.StartsWith("/trailers", StringComparison.Ordinal) && response.SupportsTrailers())
            {
                response.AppendTrailer("x-checksum", $"len={body.Length}");
            }
        });
        var address = await LoopbackApp.StartAsync(app);
        recording.Port = new Uri(address).Port;
        return recording;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <param name="RawTarget">The request target exactly as it arrived on the wire (path and query, not decoded).</param>
public sealed record RecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, string Body, string Protocol = "HTTP/1.1", string? RawTarget = null);
