using System.Diagnostics;
using MeshGuard.FlowLog;
using MeshGuard.Policy.Engine;

namespace MeshGuard.Proxy.FlowLog;

/// <summary>The pieces of a flow record read from a request, shared by the inbound and outbound handlers.</summary>
internal static class FlowFields
{
    public const string RequestIdHeader = "x-request-id";
    public const string TlsVersion = "TLSv1.3";

    /// <summary>The request id the app sent (one value, 1 to 128 characters), or null: then the sidecar makes one (<see cref="MadeIds"/>).</summary>
    public static string? CallersRequestId(HttpRequest request) =>
        request.Headers.TryGetValue(RequestIdHeader, out var existing) && existing.Count == 1 && existing[0] is { Length: > 0 and <= 128 } id ? id : null;

    /// <summary>Drops what the app sent under the names of ids the sidecar made instead (values that were not usable).</summary>
    public static void RemoveReplaced(IHeaderDictionary headers, MadeIds made)
    {
        if (made.RequestId != 0)
        {
            headers.Remove(RequestIdHeader);
        }
        if (made.TraceId != 0)
        {
            headers.Remove(TraceParentHeader);
        }
    }

    public static string? RequestId(HttpRequest request) =>
        request.Headers.TryGetValue(RequestIdHeader, out var id) && id.Count == 1 ? id[0] : null;

    public const string TraceParentHeader = "traceparent";

    /// <summary>
    /// The caller's side makes sure a call carries W3C trace context: the app's own traceparent, else that of the
    /// sidecar's server span (when tracing is on; set on the request here), else null, and the sidecar makes one
    /// (<see cref="MadeIds"/>). Both sidecars then record one trace id.
    /// </summary>
    public static string? CallersTraceParent(HttpRequest request)
    {
        if (TraceParent(request) is { } existing)
        {
            return existing;
        }
        if (Activity.Current is { IdFormat: ActivityIdFormat.W3C } activity)
        {
            request.Headers[TraceParentHeader] = activity.Id!;
            return activity.Id;
        }
        return null;
    }

    /// <summary>
    /// The request's W3C traceparent when it is well formed, as the header string itself: the flow writer takes
    /// the trace id out of it, so the request path does not cut a new string.
    /// </summary>
    public static string? TraceParent(HttpRequest request)
    {
        if (!request.Headers.TryGetValue(TraceParentHeader, out var values) || values.Count != 1 || values[0] is not { Length: 55 } traceparent)
        {
            return null;
        }
        return traceparent[2] == '-' && traceparent[35] == '-' ? traceparent : null;
    }

    /// <summary>The path as recorded: without its query unless the operator asked to keep it.</summary>
    public static string Path(HttpRequest request, bool keepQuery) =>
        keepQuery && request.QueryString.HasValue ? request.Path.Value + request.QueryString.Value : request.Path.Value ?? "";

    public static double ElapsedMs(long startTimestamp) => Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds;

    /// <summary>What every HTTP flow record takes from the exchange itself, either direction.</summary>
    public static FlowRecord ForExchange(HttpContext context, FlowDirection direction, long started, DateTimeOffset now, bool keepQuery)
    {
        var request = context.Request;
        return new FlowRecord
        {
            Time = now,
            DurationMs = ElapsedMs(started),
            Direction = direction,
            Protocol = request.Protocol,
            Method = request.Method,
            Path = Path(request, keepQuery),
            Status = context.Response.StatusCode,
            BytesIn = request.ContentLength ?? 0,
            BytesOut = context.Response.ContentLength ?? 0,
        };
    }

    /// <summary>The authorization part of an inbound record: verdict, audit result, deciding policy and rule.</summary>
    public static FlowRecord WithDecision(this FlowRecord record, in Decision decision) => record with
    {
        Decision = decision.VerdictText,
        AuditDecision = decision.AuditText,
        AuditPolicy = decision.AuditPolicy,
        AuditRule = decision.AuditRule,
        Policy = decision.Policy,
        Rule = decision.Rule,
    };
}
