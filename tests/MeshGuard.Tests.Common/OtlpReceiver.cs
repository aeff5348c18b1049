using System.Collections.Concurrent;
using System.Net;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshGuard.Tests.Common;

/// <summary>
/// A small OTLP/HTTP receiver (no collector can be installed here): accepts protobuf POSTs on /v1/traces and
/// /v1/metrics and decodes the fields the tests look at, straight from the OTLP wire format.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OtlpReceiver(WebApplication app) => _app = app;

    public string Endpoint { get; private set; } = "";

    /// <summary>(trace id hex, span name, value of resource attribute meshguard.service)</summary>
    public ConcurrentBag<(string TraceId, string Name, string? Service)> Spans { get; } = [];

    public ConcurrentBag<string> MetricNames { get; } = [];

    public static async Task<OtlpReceiver> StartAsync()
    {
        var app = LoopbackApp.CreateBuilder().Build();
        var receiver = new OtlpReceiver(app);
        app.MapPost("/v1/traces", async (HttpContext context) =>
        {
            receiver.DecodeTraces(await ReadAsync(context));
            return Results.Bytes([], "application/x-protobuf");
        });
        app.MapPost("/v1/metrics", async (HttpContext context) =>
        {
            receiver.DecodeMetrics(await ReadAsync(context));
            return Results.Bytes([], "application/x-protobuf");
        });
        receiver.Endpoint = await LoopbackApp.StartAsync(app);
        return receiver;
    }

    private static async Task<byte[]> ReadAsync(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    // ExportTraceServiceRequest{1: ResourceSpans{1: Resource{1: KeyValue}, 2: ScopeSpans{2: Span{1: trace_id, 5: name}}}}
    private void DecodeTraces(byte[] body)
    {
        foreach (var resourceSpans in Fields(body, 1))
        {
            var service = ServiceOf(resourceSpans);
            foreach (var scopeSpans in Fields(resourceSpans, 2))
            {
                foreach (var span in Fields(scopeSpans, 2))
                {
                    var traceId = Convert.ToHexStringLower(Fields(span, 1).FirstOrDefault() ?? []);
                    var name = System.Text.Encoding.UTF8.GetString(Fields(span, 5).FirstOrDefault() ?? []);
                    Spans.Add((traceId, name, service));
                }
            }
        }
    }

    // ExportMetricsServiceRequest{1: ResourceMetrics{2: ScopeMetrics{2: Metric{1: name}}}}
    private void DecodeMetrics(byte[] body)
    {
        foreach (var resourceMetrics in Fields(body, 1))
        {
            foreach (var scopeMetrics in Fields(resourceMetrics, 2))
            {
                foreach (var metric in Fields(scopeMetrics, 2))
                {
                    MetricNames.Add(System.Text.Encoding.UTF8.GetString(Fields(metric, 1).FirstOrDefault() ?? []));
                }
            }
        }
    }

    private static string? ServiceOf(byte[] resourceSpans)
    {
        foreach (var resource in Fields(resourceSpans, 1))
        {
            foreach (var keyValue in Fields(resource, 1))
            {
                var key = System.Text.Encoding.UTF8.GetString(Fields(keyValue, 1).FirstOrDefault() ?? []);
                if (key == "meshguard.service" && Fields(keyValue, 2).FirstOrDefault() is { } any)
                {
                    return System.Text.Encoding.UTF8.GetString(Fields(any, 1).FirstOrDefault() ?? []);
                }
            }
        }
        return null;
    }

    /// <summary>The length-delimited values of one field number of a protobuf message.</summary>
    private static List<byte[]> Fields(byte[] message, int number)
    {
        var values = new List<byte[]>();
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == number && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
            {
                values.Add(input.ReadBytes().ToByteArray());
            }
            else
            {
                input.SkipLastField();
            }
        }
        return values;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
