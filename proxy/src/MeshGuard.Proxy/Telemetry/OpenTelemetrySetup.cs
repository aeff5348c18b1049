using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace MeshGuard.Proxy.Telemetry;

/// <summary>
/// OpenTelemetry traces and metrics, exported over OTLP when the standard OTEL_EXPORTER_OTLP_ENDPOINT is set
/// (protocol, headers and intervals from the other standard OTEL_* variables). Off otherwise: no listener,
/// no cost. Server spans come from the ASP.NET Core instrumentation, which continues the caller's W3C
/// trace context; HTTP metrics carry the semantic-convention names.
/// </summary>
internal static class OpenTelemetrySetup
{
    public const string MeterName = "MeshGuard.Proxy";

    /// <summary>The sidecar's own instruments; recorded always, collected only when a listener (OTLP) exists.</summary>
    public static readonly System.Diagnostics.Metrics.Meter Meter = new(MeterName);

    /// <summary>The flow log's losses as an OpenTelemetry counter (the sink only counts; telemetry reads it).</summary>
    public static void ObserveFlowLog(MeshGuard.Proxy.FlowLog.FlowLogSink sink) =>
        Meter.CreateObservableCounter("meshguard.flowlog.records_lost", () => sink.Dropped,
            description: "Flow records lost to a full queue; each loss is also stated by a gap record.");

    /// <summary>Whether an OTLP endpoint is set: telemetry leaves the sidecar only then.</summary>
    public static bool IsConfigured => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"));

    /// <summary>What every signal says of its source: the sidecar's service name and the mesh service it serves.</summary>
    public static ResourceBuilder Resource(string service) => Describe(ResourceBuilder.CreateDefault(), service);

    private static ResourceBuilder Describe(ResourceBuilder resource, string service) => resource
        .AddService(serviceName: Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME") ?? "meshguard-proxy", serviceInstanceId: service)
        .AddAttributes([new KeyValuePair<string, object>("meshguard.service", service)]);

    public static bool Configure(IServiceCollection services, string service)
    {
        if (!IsConfigured)
        {
            return false;
        }
        services.AddOpenTelemetry()
            .ConfigureResource(resource => Describe(resource, service))
            .WithTracing(tracing => tracing
                .AddAspNetCoreInstrumentation()
                .AddOtlpExporter())
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddMeter(MeterName)
                .AddOtlpExporter());
        return true;
    }
}
