using System.Text.Json;
using MeshGuard.Contracts;
using MeshGuard.Contracts.DataDir;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Registry;

namespace MeshGuard.ControlPlane.Attestation;

/// <summary>
/// POST /v1/attest on the bootstrap port: a join token and a CSR in, the SVID chain and trust bundle out.
/// Steps: 1. parse and bound the request; 2. look the token up (not yet spent); 3. check that the CSR asks
/// for nothing but the token's identity; 4. spend the token; 5. issue and register. A refusal at 1-3 leaves
/// the token usable, so a sidecar with a typo can try again.
/// </summary>
internal sealed partial class BootstrapEndpoint(
    CertificateAuthority ca, JoinTokenStore tokens, ServiceRegistry registry, MeshGuard.ControlPlane.Store.RevocationStore revocations, ControlPlaneSettings settings, ILogger<BootstrapEndpoint> logger)
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
        var lookup = tokens.Find(request.JoinToken);
        if (lookup.Status != JoinTokenStatus.Valid)
        {
            return Refuse(StatusCodes.Status403Forbidden, lookup.Describe());
        }
        var id = lookup.SpiffeId!;
        if (revocations.IsRevoked(id))
        {
            return Refuse(StatusCodes.Status403Forbidden, $"{id} is revoked");
        }

        // 3.
        var mismatch = csr!.CheckRequestedIdentity(id);
        if (mismatch is not null)
        {
            return Refuse(StatusCodes.Status403Forbidden, mismatch.Replace("the caller is", "the join token is bound to", StringComparison.Ordinal));
        }

        // 4.
        lookup = tokens.Consume(request.JoinToken);
        if (lookup.Status != JoinTokenStatus.Valid)
        {
            return Refuse(StatusCodes.Status403Forbidden, lookup.Describe());
        }

        // 5.
        using var svid = ca.IssueSvid(csr, id, settings.SvidTtl);
        registry.Register(request.Service!, id, request.InboundAddress!);
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
