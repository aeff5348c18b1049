using Grpc.Core;
using MeshGuard.Contracts.V1;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.State;

namespace MeshGuard.ControlPlane.Attestation;

/// <summary>
/// SVID renewal on the mTLS port. The current SVID (verified at the handshake, so unexpired and from this
/// trust domain) is the proof; it may renew its own SPIFFE ID only.
/// </summary>
internal sealed partial class IdentityService(
    CertificateAuthority ca, IEndpointRegistrar registry, MeshGuard.ControlPlane.Sources.RevocationStore revocations, ControlPlaneSettings settings, WorkloadStatus status, ILogger<IdentityService> logger)
    : Identity.IdentityBase
{
    public override async Task<SvidResponse> Renew(RenewRequest request, ServerCallContext context)
    {
        var peer = PeerIdentity.Require(context);
        if (revocations.IsRevoked(peer))
        {
            LogRenewalRefused(logger, peer.ToString(), "the identity is revoked");
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"{peer} is revoked"));
        }
        if (!SvidSigningRequest.TryParse(request.CsrPem, out var csr, out var error))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, error!));
        }
        var mismatch = csr!.CheckRequestedIdentity(peer);
        if (mismatch is not null)
        {
            LogRenewalRefused(logger, peer.ToString(), mismatch);
            throw new RpcException(new Status(StatusCode.PermissionDenied, mismatch));
        }
        // Renewal refreshes the registration, so a restarted control plane relearns the mesh within one SVID lifetime.
        var registers = !string.IsNullOrEmpty(request.Service);
        if (registers && !Registration.TryValidate(request.Service, request.InboundAddress, out var registrationError))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, registrationError!));
        }
        // A claim secure naming refuses gets no new SVID either: the workload learns at once, not at expiry.
        if (registers && await registry.RegisterAsync(request.Service, peer, request.InboundAddress, context.CancellationToken) is { } refused)
        {
            LogRenewalRefused(logger, peer.ToString(), refused);
            throw new RpcException(new Status(StatusCode.PermissionDenied, refused));
        }
        using var svid = ca.IssueSvid(csr, peer, settings.SvidTtl);
        status.SvidIssued(peer, svid);
        LogRenewed(logger, peer.ToString(), svid.SerialNumber, svid.NotAfter.ToUniversalTime());
        return new SvidResponse
        {
            SpiffeId = peer.ToString(),
            SvidChainPem = ca.ChainPem(svid),
            TrustBundlePem = ca.Bundle.ToPem(),
        };
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "renewed SVID for {SpiffeId}, serial {Serial}, expires {NotAfter:o}")]
    private static partial void LogRenewed(ILogger logger, string spiffeId, string serial, DateTime notAfter);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "refused renewal for {SpiffeId}: {Reason}")]
    private static partial void LogRenewalRefused(ILogger logger, string spiffeId, string reason);
}
