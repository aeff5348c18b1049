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
/// A small OTLP/HTTP receiver (no collector can be installed here): accepts protobuf POSTs on /v1/traces,
/// /v1/metrics and /v1/logs and decodes the fields the tests look at, straight from the OTLP wire format.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OtlpReceiver(WebApplication app) => _app = app;

    public string Endpoint { get; private set; } = "";

    /// <summary>(trace id hex, span name, value of resource attribute meshguard.service)</summary>
    public ConcurrentBag<(string TraceId, string Name, string? Service)> Spans { get; } = [];

    public ConcurrentBag<string> MetricNames { get; } = [];

    public ConcurrentBag<OtlpLogRecord> Logs { get; } = [];

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
        app.MapPost("/v1/logs", async (HttpContext context) =>
        {
            receiver.DecodeLogs(await ReadAsync(context));
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

    // ExportLogsServiceRequest{1: ResourceLogs{1: Resource, 2: ScopeLogs{2: LogRecord{1: time_unix_nano (fixed64),
    // 5: body (AnyValue), 6: attributes (KeyValue), 9: trace_id}}}}
    private void DecodeLogs(byte[] body)
    {
        foreach (var resourceLogs in Fields(body, 1))
        {
            var service = ServiceOf(resourceLogs);
            foreach (var scopeLogs in Fields(resourceLogs, 2))
            {
                foreach (var record in Fields(scopeLogs, 2))
                {
                    Logs.Add(new OtlpLogRecord(Fixed64(record, 1), Fields(record, 5).FirstOrDefault() is { } text ? Scalar(text) : "",
                        Convert.ToHexStringLower(Fields(record, 9).FirstOrDefault() ?? []), Attributes(record, 6), service));
                }
            }
        }
    }

    /// <summary>An AnyValue's string, bool, int or double, as text.</summary>
    private static string Scalar(byte[] anyValue)
    {
        var input = new CodedInputStream(anyValue);
        var tag = input.ReadTag();
        return WireFormat.GetTagFieldNumber(tag) switch
        {
            1 => input.ReadString(),
            2 => input.ReadBool() ? "true" : "false",
            3 => input.ReadInt64().ToString(System.Globalization.CultureInfo.InvariantCulture),
            4 => input.ReadDouble().ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => "",
        };
    }

    /// <summary>A fixed64 field's value, or 0.</summary>
    private static ulong Fixed64(byte[] message, int number)
    {
        var input = new CodedInputStream(message);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == number && WireFormat.GetTagWireType(tag) == WireFormat.WireType.Fixed64)
            {
                return input.ReadFixed64();
            }
            input.SkipLastField();
        }
        return 0;
    }

    /// <summary>The resource attribute meshguard.service of a ResourceSpans or ResourceLogs (its field 1, Resource{1: KeyValue}).</summary>
    private static string? ServiceOf(byte[] resourceSignals) =>
        Fields(resourceSignals, 1).Select(resource => Attributes(resource, 1).GetValueOrDefault("meshguard.service")).FirstOrDefault(s => s is not null);

    /// <summary>The KeyValue list in field <paramref name="number"/> of a message (KeyValue{1: key, 2: AnyValue}), values as text.</summary>
    private static Dictionary<string, string> Attributes(byte[] message, int number)
    {
        var attributes = new Dictionary<string, string>();
        foreach (var keyValue in Fields(message, number))
        {
            var key = System.Text.Encoding.UTF8.GetString(Fields(keyValue, 1).FirstOrDefault() ?? []);
            attributes[key] = Fields(keyValue, 2).FirstOrDefault() is { } any ? Scalar(any) : "";
        }
        return attributes;
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

/// <summary>One OTLP log record as received: its time (Unix ns), body, trace id (hex) and attributes as text.</summary>
public sealed record OtlpLogRecord(ulong TimeUnixNano, string Body, string TraceId, IReadOnlyDictionary<string, string> Attributes, string? Service);
