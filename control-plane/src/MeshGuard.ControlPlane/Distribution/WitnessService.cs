using System.Text.Json;
using Grpc.Core;
using MeshGuard.Contracts.V1;
using MeshGuard.ControlPlane.Attestation;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.FlowLog;

namespace MeshGuard.ControlPlane.Distribution;

/// <summary>
/// The flow-log witness: keeps, per workload, the latest signed record its sidecar wrote. Only a record the
/// caller itself signed (checked against the bundle) and newer than the one kept is taken.
/// </summary>
internal sealed partial class WitnessService(CertificateAuthority ca, IWitnessRecords records, ILogger<WitnessService> logger) : Witness.WitnessBase
{
    public override async Task<WitnessAck> Record(WitnessRecord request, ServerCallContext context)
    {
        var peer = PeerIdentity.Require(context);
        if (request.Line.Length is 0 or > 64 * 1024)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "a witness record is one signed flow-log line of at most 64 KiB"));
        }
        JsonElement record;
        try
        {
            using var document = JsonDocument.Parse(request.Line.Memory);
            record = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"not JSON: {e.Message}"));
        }
        var check = FlowLogVerifier.VerifySigned(record, ca.Bundle);
        if (check.Problem is not null || check.Signer != peer.ToString())
        {
            var reason = check.Detail ?? $"signed by {check.Signer}, not the caller {peer}";
            LogRefused(logger, peer.ToString(), reason);
            throw new RpcException(new Status(StatusCode.PermissionDenied, reason));
        }
        var seq = record.Number("seq");
        return new WitnessAck { Seq = await records.KeepAsync(peer.ToString(), request.Line.Memory, seq, context.CancellationToken) };
    }

    [LoggerMessage(EventId = 60, Level = LogLevel.Warning, Message = "witness refused a record from {SpiffeId}: {Reason}")]
    private static partial void LogRefused(ILogger logger, string spiffeId, string reason);
}
