using System.Buffers;
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

    /// <summary>The calls whose request body may be larger than Kestrel's 64 KiB limit on this port.</summary>
    internal static bool TakesLargeBody(PathString path) =>
        path.Equals("/meshguard.v1.Witness/Upload", StringComparison.Ordinal) || path.Equals("/meshguard.v1.Witness/UploadParts", StringComparison.Ordinal);

    public override Task<WitnessAck> Upload(FlowSegment request, ServerCallContext context) =>
        TakeAsync(PeerIdentity.Require(context).ToString(), request.Lines.Memory, request.Discontinuous, context);

    /// <summary>What a usual segment fits in (a sidecar cuts at the last signed record within 1 MiB).</summary>
    private const int UsualSegmentBytes = (1024 * 1024) + (64 * 1024);

    public override async Task<WitnessAck> UploadParts(IAsyncStreamReader<FlowSegment> requestStream, ServerCallContext context)
    {
        // Who is asking comes first: nothing is read (up to 16 MiB) for a caller that would be refused anyway.
        var peer = PeerIdentity.Require(context).ToString();
        // The stores are done with the lines when TakeAsync returns (the closing line is copied): the buffer goes back then.
        using var joined = new PooledBufferWriter(UsualSegmentBytes);
        bool? discontinuous = null;
        await foreach (var part in requestStream.ReadAllAsync(context.CancellationToken))
        {
            // Whether the segment starts a new part of the copy is said once, by its first part.
            if (discontinuous is not null && part.Discontinuous)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, "only a segment's first part may say it is discontinuous"));
            }
            discontinuous ??= part.Discontinuous;
            if (joined.WrittenCount + part.Lines.Length > MaxSegmentBytes)
            {
                throw new RpcException(new Status(StatusCode.ResourceExhausted, $"a flow-log segment is at most {MaxSegmentBytes} bytes"));
            }
            joined.Write(part.Lines.Span);
        }
        return await TakeAsync(peer, joined.WrittenMemory, discontinuous ?? false, context);
    }

    /// <summary>Appends a segment that chains on, or says where the held copy ends when the segment is empty.</summary>
    private async Task<WitnessAck> TakeAsync(string peer, ReadOnlyMemory<byte> lines, bool discontinuous, ServerCallContext context)
    {
        if (lines.IsEmpty)
        {
            return new WitnessAck { Seq = await collected.HeldSeqAsync(peer, context.CancellationToken) };
        }
        var verdict = await collected.AppendAsync(peer, lines, discontinuous, ca.Bundle, context.CancellationToken);
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
