using System.Net;
using MeshGuard.FlowLog;
using MeshGuard.Proxy.FlowLog;
using MeshGuard.Proxy.Identity;

using MeshGuard.Proxy.Routing;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// The outbound side's flow records, one per request or connection, written when it ends: this workload as the
/// source, the service and endpoint identity it went to (none when nothing answered), or, for traffic that left
/// the mesh, the address it went to. As in inbound records, bytes_in is the caller's direction.
/// </summary>
internal sealed class OutboundFlowRecorder(FlowLogSink flows, ICredentialSource credentials, TimeProvider time)
{
    /// <summary>The dest_service of a flow record for traffic outside the mesh (as Istio's PassthroughCluster).</summary>
    public const string PassthroughService = "passthrough";

    /// <summary>A request to a mesh service; <paramref name="route"/> is null when no service had its Host.</summary>
    public void Exchange(HttpContext context, long started, string? requestId, string? traceParent, MadeIds made, ServiceRoute? route, MeshEndpoint? endpoint)
    {
        if (!flows.Enabled)
        {
            return;
        }
        flows.Add(FlowFields.ForExchange(context, FlowDirection.Outbound, started, time.GetUtcNow(), flows.Settings.KeepQuery) with
        {
            RequestId = requestId,
            MadeRequestId = made.RequestId,
            SourceId = credentials.Current.IdText,
            DestId = endpoint?.IdentityText,
            DestService = route?.Name ?? context.Request.Host.Value,
            DestPort = endpoint?.EndPoint.Port ?? 0,
            TraceId = traceParent,
            MadeTraceId = made.TraceId,
            TlsVersion = endpoint is null ? null : FlowFields.TlsVersion,
        });
    }

    /// <summary>An opaque TCP connection to a mesh service: a refusal by the peer shows as a short one with no bytes back.</summary>
    public void Connection(string service, int port, MeshEndpoint? endpoint, long started, long bytesIn, long bytesOut)
    {
        if (!flows.Enabled)
        {
            return;
        }
        flows.Add(new FlowRecord
        {
            Time = time.GetUtcNow(),
            DurationMs = FlowFields.ElapsedMs(started),
            Direction = FlowDirection.Outbound,
            SourceId = credentials.Current.IdText,
            DestId = endpoint?.IdentityText,
            DestService = service,
            DestPort = port,
            Protocol = "tcp",
            BytesIn = bytesIn,
            BytesOut = bytesOut,
            TlsVersion = endpoint is null ? null : FlowFields.TlsVersion,
        });
    }

    /// <summary>A connection that left the mesh (what a reviewer most wants to see): the address, no peer identity.</summary>
    public void PassedOut(IPEndPoint original, long started, long bytesIn, long bytesOut, string decision, string rule)
    {
        if (flows.Enabled)
        {
            flows.Add(Outside(new FlowRecord { Time = time.GetUtcNow(), DurationMs = FlowFields.ElapsedMs(started), Protocol = "tcp", BytesIn = bytesIn, BytesOut = bytesOut },
                original, decision, rule));
        }
    }

    /// <summary>A plain HTTP request that left the mesh, or was refused for trying to.</summary>
    public void PassedOut(HttpContext context, IPEndPoint original, long started, string decision, string rule)
    {
        if (flows.Enabled)
        {
            flows.Add(Outside(FlowFields.ForExchange(context, FlowDirection.Outbound, started, time.GetUtcNow(), flows.Settings.KeepQuery), original, decision, rule));
        }
    }

    private FlowRecord Outside(FlowRecord record, IPEndPoint original, string decision, string rule) => record with
    {
        Direction = FlowDirection.Outbound,
        SourceId = credentials.Current.IdText,
        DestService = PassthroughService,
        DestAddr = original.Address.ToString(),
        DestPort = original.Port,
        Decision = decision,
        Policy = TransparentOutbound.PolicyName,
        Rule = rule,
    };
}
