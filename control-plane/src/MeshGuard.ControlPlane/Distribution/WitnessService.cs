using Grpc.Core;
using MeshGuard.Contracts.V1;
using MeshGuard.ControlPlane.Attestation;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.FlowLog;
using MeshGuard.FlowStore;

namespace MeshGuard.ControlPlane.Distribution;

/// <summary>
/// The flow-log collector and witness. Keeps each workload's log as its sidecar uploads it, in segments that
/// must chain on to the copy held and end in a record the caller itself signed (<see cref="IFlowSegmentStore"/>: the data
/// directory, or the PostgreSQL store the replicas share),
/// and the closing record of the latest as its witness record.
/// </summary>
internal sealed partial class WitnessService(CertificateAuthority ca, IWitnessRecords records, IFlowSegmentStore collected, ILogger<WitnessService> logger) : Witness.WitnessBase
{
    /// <summary>The largest segment taken: a sidecar checkpoints every 1,000 records, far below it.</summary>
    internal const int MaxSegmentBytes = 16 * 1024 * 1024;

    /// <summary>The one call whose request body may be larger than Kestrel's 64 KiB limit on this port.</summary>
    internal const string UploadPath = "/meshguard.v1.Witness/Upload";

    public override async Task<WitnessAck> Upload(FlowSegment request, ServerCallContext context)
    {
        var peer = PeerIdentity.Require(context).ToString();
        if (request.Lines.IsEmpty)
        {
            return new WitnessAck { Seq = await collected.HeldSeqAsync(peer, context.CancellationToken) };
        }
        var verdict = await collected.AppendAsync(peer, request.Lines.Memory, request.Discontinuous, ca.Bundle, context.CancellationToken);
        if (verdict.Refusal is { } refusal)
        {
            LogSegmentRefused(logger, peer, refusal);
            throw new RpcException(new Status(StatusCode.FailedPrecondition, refusal));
        }
        // The segment's closing record is the newest signed one: the witness keeps it as a Record call would.
        await records.KeepAsync(peer, verdict.LastLine, verdict.LastSeq, context.CancellationToken);
        return new WitnessAck { Seq = verdict.LastSeq };
    }

    [LoggerMessage(EventId = 62, Level = LogLevel.Warning, Message = "flow-log segment from {SpiffeId} refused: {Reason}")]
    private static partial void LogSegmentRefused(ILogger logger, string spiffeId, string reason);
}
