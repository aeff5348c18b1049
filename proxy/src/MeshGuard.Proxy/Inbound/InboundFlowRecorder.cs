using MeshGuard.FlowLog;
using MeshGuard.Policy.Engine;
using MeshGuard.Proxy.FlowLog;
using MeshGuard.Proxy.Identity;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// The inbound side's flow records, one per request or opaque connection, written when it ends (or is refused):
/// who called (from the connection's handshake), this workload as the destination, and what decided.
/// </summary>
internal sealed class InboundFlowRecorder(FlowLogSink flows, ICredentialSource credentials, InboundSettings settings, TimeProvider time)
{
    /// <summary>True when the query is kept in recorded paths (the operator asked for it).</summary>
    public bool KeepQuery => flows.Settings.KeepQuery;

    /// <summary>A request's record: <paramref name="method"/> and <paramref name="path"/> are those the decision was made on.</summary>
    public void Exchange(HttpContext context, PeerIdentityFeature peer, long started, in Decision decision, string method, string path)
    {
        if (!flows.Enabled)
        {
            return;
        }
        var request = context.Request;
        flows.Add(FlowFields.ForExchange(context, FlowDirection.Inbound, started, time.GetUtcNow(), flows.Settings.KeepQuery).WithDecision(decision) with
        {
            Method = method,
            Path = path,
            RequestId = FlowFields.RequestId(request),
            SourceId = peer.Caller.Id,
            SourceAddr = peer.RemoteAddress,
            DestId = credentials.Current.IdText,
            DestService = settings.Service,
            DestPort = settings.AppPort,
            TraceId = FlowFields.TraceParent(request),
            TlsVersion = FlowFields.TlsVersion,
        });
    }

    /// <summary>An opaque connection's record, with the bytes each way (in: the caller's direction).</summary>
    public void Connection(PeerIdentityFeature peer, int port, long started, in Decision decision, long bytesIn, long bytesOut)
    {
        if (!flows.Enabled)
        {
            return;
        }
        flows.Add(new FlowRecord
        {
            Time = time.GetUtcNow(),
            DurationMs = FlowFields.ElapsedMs(started),
            Direction = FlowDirection.Inbound,
            SourceId = peer.Caller.Id,
            SourceAddr = peer.RemoteAddress,
            DestId = credentials.Current.IdText,
            DestService = settings.Service,
            DestPort = port,
            Protocol = "tcp",
            BytesIn = bytesIn,
            BytesOut = bytesOut,
            TlsVersion = FlowFields.TlsVersion,
        }.WithDecision(decision));
    }
}
