using System.Net;
using MeshGuard.Ctl.Demo;
using MeshGuard.FlowLog;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>Traces, metrics and flow records leave both sidecars over OTLP, and one call is one trace on both sides and in both flow records.</summary>
public sealed class TelemetryTests : IAsyncLifetime
{
    private readonly TempDirectory _temp = new();
    private LocalMesh _mesh = null!;
    private RecordingApp _app = null!;
    private OtlpReceiver _otlp = null!;
    private MeshService _orders = null!;
    private MeshService _frontend = null!;

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        _otlp = await OtlpReceiver.StartAsync();
        _mesh = new LocalMesh(_temp.Path);
        await _mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
        _app = await RecordingApp.StartAsync("orders");
        var otel = new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = _otlp.Endpoint,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
            ["OTEL_BLRP_SCHEDULE_DELAY"] = "200",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
        };
        _orders = await _mesh.StartSidecarAsync("orders", _app.Port, environment: otel);
        _frontend = await _mesh.StartSidecarAsync("frontend", _app.Port, environment: otel);
        await SidecarAdmin.WaitForServicesAsync(_frontend, 2);
    }

    public async Task DisposeAsync()
    {
        await _mesh.DisposeAsync();
        await _app.DisposeAsync();
        await _otlp.DisposeAsync();
        _temp.Dispose();
    }

    [Fact]
    public async Task ACallIsOneTraceAcrossBothSidecarsAndTheirFlowRecordsAndMetricsAreExported()
    {
        using var client = SidecarAdmin.ThroughOutbound(_frontend);
        using (var response = await client.GetAsync(new Uri("http://orders/traced")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        string? traceId = null;
        Assert.True(await Eventually.TrueAsync(() =>
        {
            var inbound = FlowLogReader.Records(_orders.FlowDirectory!).FirstOrDefault(r => r.Text("path") == "/traced");
            traceId = inbound.ValueKind == System.Text.Json.JsonValueKind.Undefined ? null : inbound.Text("trace_id");
            return traceId is not null;
        }), "no inbound flow record with a trace id");
        // Each sidecar writes its record in its own time: wait for the caller's too.
        Assert.True(await Eventually.TrueAsync(() => FlowLogReader.Records(_frontend.FlowDirectory!).Any(r => r.Text("path") == "/traced")));
        var outbound = FlowLogReader.Records(_frontend.FlowDirectory!).First(r => r.Text("path") == "/traced");
        Assert.Equal(traceId, outbound.Text("trace_id"));

        // The app received the same trace context.
        var seen = Assert.Single(_app.Requests, r => r.Path == "/traced");
        Assert.Contains(traceId!, seen.Headers["traceparent"], StringComparison.Ordinal);

        Assert.True(await Eventually.TrueAsync(() =>
            _otlp.Spans.Any(s => s.TraceId == traceId && s.Service == "orders") && _otlp.Spans.Any(s => s.TraceId == traceId && s.Service == "frontend"),
            TimeSpan.FromSeconds(15)), $"spans seen: {string.Join(", ", _otlp.Spans.Select(s => $"{s.Service}:{s.TraceId[..8]}:{s.Name}"))}");
        Assert.True(await Eventually.TrueAsync(() =>
            _otlp.MetricNames.Contains("http.server.request.duration") && _otlp.MetricNames.Contains("meshguard.authz.decisions"),
            TimeSpan.FromSeconds(15)), $"metrics seen: {string.Join(", ", _otlp.MetricNames.Distinct())}");
    }

    [Fact]
    public async Task EachFlowRecordLeavesAsAnOtlpLogRecordWithItsTimeTraceSemanticAttributesSeqAndLineHash()
    {
        using var client = SidecarAdmin.ThroughOutbound(_frontend);
        using (var response = await client.GetAsync(new Uri("http://orders/exported/1?q=secret")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        foreach (var (sidecar, direction) in new[] { (_orders, "inbound"), (_frontend, "outbound") })
        {
            string? line = null;
            Assert.True(await Eventually.TrueAsync(() =>
                (line = FlowLogFormat.Files(sidecar.FlowDirectory!).SelectMany(File.ReadLines).FirstOrDefault(l => l.Contains("\"path\":\"/exported/1\"", StringComparison.Ordinal))) is not null),
                $"no {direction} flow record of the call");
            var record = System.Text.Json.JsonDocument.Parse(line!).RootElement;
            var service = sidecar == _orders ? "orders" : "frontend";
            OtlpLogRecord? exported = null;
            Assert.True(await Eventually.TrueAsync(() =>
                (exported = _otlp.Logs.FirstOrDefault(l => l.Service == service && l.Attributes.GetValueOrDefault("url.path") == "/exported/1")) is not null,
                TimeSpan.FromSeconds(15)), $"log records seen: {string.Join(", ", _otlp.Logs.Select(l => $"{l.Service}:{l.Body}"))}");

            var attributes = exported!.Attributes;
            Assert.Equal(direction, attributes["meshguard.direction"]);
            Assert.Equal("GET", attributes["http.request.method"]);
            Assert.Equal("200", attributes["http.response.status_code"]);
            Assert.Equal("http", attributes["network.protocol.name"]);
            Assert.Equal("spiffe://mesh.local/ns/shop/sa/orders", attributes["meshguard.destination.id"]);
            Assert.Equal(record.Text("decision"), attributes.GetValueOrDefault("meshguard.decision"));
            if (direction == "inbound")
            {
                Assert.Equal("allow", attributes["meshguard.decision"]); // the caller's side records no decision of its own
                Assert.Equal("spiffe://mesh.local/ns/shop/sa/frontend", attributes["meshguard.source.id"]);
                Assert.Equal("1.3", attributes["tls.protocol.version"]);
            }
            Assert.Equal(record.Text("request_id"), attributes["meshguard.request_id"]);
            // Its place in the signed log: the seq, and the SHA-256 of the very line (the next record's prev).
            Assert.Equal(record.GetProperty("seq").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture), attributes["meshguard.flow.seq"]);
            Assert.Equal(FlowLogFormat.HashHex(System.Text.Encoding.UTF8.GetBytes(line!)), attributes["meshguard.flow.hash"]);
            // The flow's own time and trace, not the export's.
            var time = DateTimeOffset.Parse(record.Text("time")!, System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal((ulong)(time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100, exported.TimeUnixNano);
            Assert.Equal(record.Text("trace_id"), exported.TraceId);
            Assert.Contains("GET /exported/1 200", exported.Body, StringComparison.Ordinal);
            Assert.DoesNotContain(attributes.Values, v => v.Contains("secret", StringComparison.Ordinal)); // no query, as in the log
        }
    }
}
