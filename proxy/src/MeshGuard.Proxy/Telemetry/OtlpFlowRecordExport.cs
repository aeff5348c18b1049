using System.Diagnostics;
using MeshGuard.FlowLog;
using MeshGuard.Proxy.FlowLog;
using OpenTelemetry;
using OpenTelemetry.Logs;

namespace MeshGuard.Proxy.Telemetry;

/// <summary>
/// Each flow record as an OpenTelemetry log record over OTLP, beside the signed log (which stays the proof): for the
/// systems a security team already runs. On when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set, as traces and metrics
/// are, unless <c>OTEL_LOGS_EXPORTER=none</c>; protocol, headers and batching come from the standard OTEL_* variables.
/// Attributes follow the semantic conventions for HTTP and the network (<c>http.request.method</c>, <c>url.path</c>,
/// <c>source.address</c>, ...) and add the mesh's own under <c>meshguard.*</c>: identities, decision, policy, rule, and
/// the record's <c>seq</c> and line hash, by which a log record can be checked against the signed log. The record's
/// time is the log record's time, its trace id the log record's trace id.
/// A logger factory of its own: only flow records go this way, not the sidecar's diagnostics.
/// </summary>
internal sealed class OtlpFlowRecordExport : IFlowRecordExport, IDisposable
{
    private const string Category = "MeshGuard.FlowRecords";
    private static readonly EventId FlowEvent = new(1, "flow");
    private static readonly EventId GapEvent = new(2, "gap");

    // The record's own time and trace, handed to the processor that runs inside Log on this same thread.
    [ThreadStatic]
    private static (DateTimeOffset Time, string? Trace)? t_current;

    private readonly ILoggerFactory _factory;
    private readonly ILogger _logger;

    private OtlpFlowRecordExport(string service)
    {
        _factory = LoggerFactory.Create(logging => logging
            .SetMinimumLevel(LogLevel.Information)
            .AddOpenTelemetry(options =>
            {
                options.SetResourceBuilder(OpenTelemetrySetup.Resource(service));
                options.IncludeFormattedMessage = true;
                options.AddProcessor(new RecordTimeAndTrace());
                options.AddOtlpExporter();
            }));
        _logger = _factory.CreateLogger(Category);
    }

    /// <summary>The export, or null when OTLP is not configured or logs are turned off.</summary>
    public static OtlpFlowRecordExport? CreateIfConfigured(string service) =>
        OpenTelemetrySetup.IsConfigured && !string.Equals(Environment.GetEnvironmentVariable("OTEL_LOGS_EXPORTER"), "none", StringComparison.OrdinalIgnoreCase)
            ? new OtlpFlowRecordExport(service)
            : null;

    public void Flow(in FlowRecord record, long seq, string hash)
    {
        var attributes = new List<KeyValuePair<string, object?>>(24);
        if (record.Protocol is { } protocol && protocol.StartsWith("HTTP/", StringComparison.Ordinal))
        {
            Add(attributes, "network.protocol.name", "http");
            Add(attributes, "network.protocol.version", protocol[5..]);
            Add(attributes, "http.request.method", record.Method);
            Add(attributes, "url.path", record.Path);
            if (record.Status != 0)
            {
                attributes.Add(new("http.response.status_code", record.Status));
            }
        }
        attributes.Add(new("network.transport", "tcp"));
        Add(attributes, "source.address", record.SourceAddr);
        Add(attributes, "destination.address", record.DestAddr);
        if (record.DestPort != 0)
        {
            attributes.Add(new("destination.port", record.DestPort));
        }
        if (record.TlsVersion is { } tls && tls.StartsWith("TLSv", StringComparison.Ordinal))
        {
            attributes.Add(new("tls.protocol.name", "tls"));
            attributes.Add(new("tls.protocol.version", tls[4..]));
        }
        attributes.Add(new("meshguard.direction", record.Direction == FlowDirection.Inbound ? "inbound" : "outbound"));
        Add(attributes, "meshguard.source.id", record.SourceId);
        Add(attributes, "meshguard.destination.id", record.DestId);
        Add(attributes, "meshguard.destination.service", record.DestService);
        Add(attributes, "meshguard.decision", record.Decision);
        Add(attributes, "meshguard.policy", record.Policy);
        Add(attributes, "meshguard.rule", record.Rule);
        Add(attributes, "meshguard.audit.decision", record.AuditDecision);
        Add(attributes, "meshguard.audit.policy", record.AuditPolicy);
        Add(attributes, "meshguard.audit.rule", record.AuditRule);
        // Ids the sidecar made are numbers in the record; the exporter needs their text (on the writer's thread).
        Add(attributes, "meshguard.request_id", record.RequestId ?? (record.MadeRequestId != 0 ? FlowRecord.HexText(record.MadeRequestId) : null));
        attributes.Add(new("meshguard.duration_ms", record.DurationMs));
        attributes.Add(new("meshguard.bytes_in", record.BytesIn));
        attributes.Add(new("meshguard.bytes_out", record.BytesOut));
        attributes.Add(new("meshguard.flow.seq", seq));
        attributes.Add(new("meshguard.flow.hash", hash));
        Emit(FlowEvent, record.Time, record.TraceId ?? (record.MadeTraceId != 0 ? FlowRecord.HexText(record.MadeTraceId) : null), attributes, Describe(record));
    }

    public void Gap(long missing, DateTimeOffset time, long seq, string hash) =>
        Emit(GapEvent, time, null,
            [new("meshguard.flow.missing", missing), new("meshguard.flow.seq", seq), new("meshguard.flow.hash", hash)],
            $"{missing} flow records lost (queue full or a failed write)");

    private void Emit(EventId id, DateTimeOffset time, string? trace, List<KeyValuePair<string, object?>> attributes, string body)
    {
        t_current = (time, trace);
        try
        {
            _logger.Log(LogLevel.Information, id, attributes, null, (_, _) => body);
        }
        finally
        {
            t_current = null;
        }
    }

    /// <summary>A line a person reads first: "inbound GET /orders/1 200 allow spiffe://... -> spiffe://...".</summary>
    private static string Describe(in FlowRecord r) =>
        $"{(r.Direction == FlowDirection.Inbound ? "inbound" : "outbound")} {r.Method ?? r.Protocol} {r.Path ?? r.DestAddr} {r.Status} {r.Decision} {r.SourceId} -> {r.DestId ?? r.DestService}";

    private static void Add(List<KeyValuePair<string, object?>> attributes, string key, string? value)
    {
        if (value is not null)
        {
            attributes.Add(new(key, value));
        }
    }

    public void Dispose() => _factory.Dispose(); // flushes what is batched

    /// <summary>Sets the log record's time and trace to the flow's, while the record is still in this thread's hands.</summary>
    private sealed class RecordTimeAndTrace : BaseProcessor<LogRecord>
    {
        private static readonly System.Buffers.SearchValues<char> LowerHex = System.Buffers.SearchValues.Create("0123456789abcdef");

        public override void OnEnd(LogRecord data)
        {
            if (t_current is not { } current)
            {
                return;
            }
            data.Timestamp = current.Time.UtcDateTime;
            // The trace id as the log line has it; a whole traceparent gives the caller's span id too.
            if (current.Trace is { } trace && FlowRecord.TraceIdOf(trace) is { Length: 32 } id && !id.ContainsAnyExcept(LowerHex))
            {
                data.TraceId = ActivityTraceId.CreateFromString(id);
                if (trace.Length == FlowRecord.TraceparentLength && trace.AsSpan(36, 16) is var span && !span.ContainsAnyExcept(LowerHex))
                {
                    data.SpanId = ActivitySpanId.CreateFromString(span);
                }
            }
        }
    }
}
