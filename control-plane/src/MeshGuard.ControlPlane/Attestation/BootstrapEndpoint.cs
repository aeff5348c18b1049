using System.Text.Json;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.State;

namespace MeshGuard.ControlPlane.Attestation;

/// <summary>
/// POST /v1/attest on the bootstrap port: a join token (or a projected service-account token) and a CSR in,
/// the SVID chain and trust bundle out. Steps: 1. parse and bound the request; 2. look the join token up (not
/// yet spent), or verify the service-account token against the cluster issuer's keys; 3. check that the CSR
/// asks for nothing but that identity; 4. spend the join token; 5. issue and register. A refusal at 1-3
/// leaves a join token usable, so a sidecar with a typo can try again. A service-account token is not spent:
/// it is bound to the audience meshguard and expires, as the API server made it.
/// </summary>
internal sealed partial class BootstrapEndpoint(
    CertificateAuthority ca, IJoinTokens tokens, ServiceAccountIssuerKeys serviceAccounts, IEndpointRegistrar registry, MeshGuard.ControlPlane.Sources.RevocationStore revocations,
    ControlPlaneSettings settings, WorkloadStatus status, ILogger<BootstrapEndpoint> logger)
{
    public async Task<IResult> AttestAsync(HttpContext context)
    {
        // 1.
        if (context.Request.ContentLength is > Bootstrap.MaxRequestBytes)
        {
            return Refuse(StatusCodes.Status413PayloadTooLarge, "request is too large");
        }
        AttestRequest? request;
        try
        {
            request = await JsonSerializer.DeserializeAsync(context.Request.Body, ContractsJsonContext.Default.AttestRequest, context.RequestAborted);
        }
        catch (JsonException e)
        {
            return Refuse(StatusCodes.Status400BadRequest, $"request is not valid JSON: {e.Message}");
        }
        if (request is null)
        {
            return Refuse(StatusCodes.Status400BadRequest, "request is empty");
        }
        if (!Registration.TryValidate(request.Service, request.InboundAddress, out var registrationError))
        {
            return Refuse(StatusCodes.Status400BadRequest, registrationError!);
        }
        if (!SvidSigningRequest.TryParse(request.CsrPem, out var csr, out var csrError))
        {
            return Refuse(StatusCodes.Status400BadRequest, csrError!);
        }

        // 2.
        var byServiceAccount = string.IsNullOrEmpty(request.JoinToken) && !string.IsNullOrEmpty(request.ServiceAccountToken);
        MeshGuard.Spiffe.SpiffeId id;
        if (byServiceAccount)
        {
            if (serviceAccounts.Verifier is not { } verifier)
            {
                return Refuse(StatusCodes.Status403Forbidden, "this control plane takes no service-account tokens (it was started without --sa-issuer)");
            }
            if (!verifier.TryVerify(request.ServiceAccountToken!, out var accountId, out var tokenError))
            {
                return Refuse(StatusCodes.Status403Forbidden, "service-account token refused: " + tokenError);
            }
            id = accountId!;
        }
        else
        {
            var lookup = await tokens.FindAsync(request.JoinToken, context.RequestAborted);
            if (lookup.Status != JoinTokenStatus.Valid)
            {
                return Refuse(StatusCodes.Status403Forbidden, lookup.Describe());
            }
            id = lookup.SpiffeId!;
        }
        if (revocations.IsRevoked(id))
        {
            return Refuse(StatusCodes.Status403Forbidden, $"{id} is revoked");
        }

        // 3.
        var mismatch = csr!.CheckRequestedIdentity(id);
        if (mismatch is not null)
        {
            return Refuse(StatusCodes.Status403Forbidden, mismatch.Replace("the caller is", byServiceAccount ? "the service-account token is for" : "the join token is bound to", StringComparison.Ordinal));
        }

        // Secure naming before the token is spent: a claim the registry would refuse leaves the token usable.
        if (registry.Check(request.Service!, id, request.InboundAddress!) is { } naming)
        {
            return Refuse(StatusCodes.Status403Forbidden, naming);
        }

        // 4.
        if (!byServiceAccount)
        {
            var spent = await tokens.ConsumeAsync(request.JoinToken, context.RequestAborted);
            if (spent.Status != JoinTokenStatus.Valid)
            {
                return Refuse(StatusCodes.Status403Forbidden, spent.Describe());
            }
        }

        // 5.
        if (await registry.RegisterAsync(request.Service!, id, request.InboundAddress!, context.RequestAborted) is { } refused)
        {
            return Refuse(StatusCodes.Status403Forbidden, refused);
        }
        using var svid = ca.IssueSvid(csr, id, settings.SvidTtl);
        status.SvidIssued(id, svid);
        LogAttested(logger, id.ToString(), request.Service!, request.InboundAddress!, svid.SerialNumber);
        return Results.Json(
            new AttestResponse(id.ToString(), ca.ChainPem(svid), ca.Bundle.ToPem()),
            ContractsJsonContext.Default.AttestResponse);

        IResult Refuse(int status, string reason)
        {
            LogRefused(logger, context.Connection.RemoteIpAddress?.ToString() ?? "?", reason);
            return Results.Json(new ErrorResponse(reason), ContractsJsonContext.Default.ErrorResponse, statusCode: status);
        }
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "attested {SpiffeId} for service {Service} at {Address}, SVID serial {Serial}")]
    private static partial void LogAttested(ILogger logger, string spiffeId, string service, string address, string serial);

    [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "refused attestation from {Remote}: {Reason}")]
    private static partial void LogRefused(ILogger logger, string remote, string reason);
}
