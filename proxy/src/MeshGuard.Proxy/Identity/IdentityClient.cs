using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using MeshGuard.Contracts;
using MeshGuard.Contracts.V1;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Identity;

/// <summary>
/// Gets SVIDs from the control plane: the first one with the join token over server-only TLS on the
/// bootstrap port, later ones over mTLS with the current SVID. A new key is made for every SVID; it never
/// leaves the process.
/// </summary>
internal sealed class IdentityClient(AttestationSettings settings, WorkloadIdentity identity, SpiffeConnector connector, TimeProvider time)
{
    /// <summary>The bootstrap ports in turn until one answers; the last network error when none does (the caller retries).</summary>
    private async Task<HttpResponseMessage> PostToAnyReplicaAsync(HttpClient client, AttestRequest request, CancellationToken cancellation)
    {
        HttpRequestException? last = null;
        foreach (var bootstrap in settings.Bootstraps)
        {
            var uri = new UriBuilder(bootstrap) { Scheme = "http", Path = Bootstrap.AttestPath }.Uri;
            try
            {
                return await client.PostAsJsonAsync(uri, request, ContractsJsonContext.Default.AttestRequest, cancellation);
            }
            catch (HttpRequestException e) when (e.InnerException is not PeerIdentityException)
            {
                last = e;
            }
        }
        throw last!;
    }

    /// <summary>Attests with the join token. A refusal by the control plane is final; a network error is retried by the caller.</summary>
    public Task<X509Svid> AttestAsync(TrustBundle controlPlaneBundle, CancellationToken cancellation) =>
        AttestAsync(controlPlaneBundle, expected: null, cancellation);

    /// <summary>
    /// Whether the sidecar can attest again by itself once its SVID has expired (a control plane unreachable for the
    /// SVID's last quarter of life): a service-account token file is read anew at each attempt, a join token is spent once.
    /// </summary>
    public bool CanAttestAgain => string.IsNullOrEmpty(settings.JoinToken) && settings.ServiceAccountTokenFile is not null;

    /// <summary>
    /// Attests again with the service-account token, in place of a renewal the expired SVID can no longer authenticate.
    /// The control plane is checked against the bundle in force (a root may have rotated since the start), and the new
    /// SVID must name the identity held: routes and policy were compiled for it.
    /// </summary>
    public Task<X509Svid> AttestAgainAsync(CancellationToken cancellation)
    {
        var current = identity.Current;
        return AttestAsync(current.Bundle, current.Svid.Id, cancellation);
    }

    private async Task<X509Svid> AttestAsync(TrustBundle controlPlaneBundle, SpiffeId? expected, CancellationToken cancellation)
    {
        using var client = connector.BootstrapClient(controlPlaneBundle, TimeSpan.FromSeconds(15));
        using var key = SvidKey.CreateKey();
        // The CSR names no identity: the join token, or the service-account token, decides who we are.
        string? accountToken = null;
        if (string.IsNullOrEmpty(settings.JoinToken))
        {
            if (settings.ServiceAccountTokenFile is not { } tokenFile)
            {
                throw new AttestationRefusedException("no valid stored SVID and no --join-token or --sa-token-file to get one");
            }
            // Read at each attempt: the kubelet replaces the projected token before it expires.
            try
            {
                accountToken = (await File.ReadAllTextAsync(tokenFile, cancellation)).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new AttestationRefusedException($"--sa-token-file {tokenFile}: {e.Message}");
            }
        }
        var request = new AttestRequest(settings.JoinToken, CreateCsrWithoutIdentity(key), settings.Service, settings.AdvertiseAddress, accountToken);
        using var response = await PostToAnyReplicaAsync(client, request, cancellation);
        if (!response.IsSuccessStatusCode)
        {
            var error = await ReadErrorAsync(response, cancellation);
            throw new AttestationRefusedException($"control plane refused to attest: {error}");
        }
        var body = await response.Content.ReadFromJsonAsync(ContractsJsonContext.Default.AttestResponse, cancellation)
            ?? throw new AttestationRefusedException("control plane sent an empty attestation response");
        return Accept(body.SvidChainPem, body.TrustBundlePem, key, controlPlaneBundle, expected);
    }

    /// <summary>Renews over mTLS, authenticated by the current SVID.</summary>
    public async Task<X509Svid> RenewAsync(MeshGuard.Contracts.V1.Identity.IdentityClient client, CancellationToken cancellation)
    {
        var current = identity.Current;
        using var key = SvidKey.CreateKey();
        var response = await client.RenewAsync(
            new RenewRequest
            {
                CsrPem = SvidKey.CreateSigningRequestPem(key, current.Svid.Id),
                Service = settings.Service,
                InboundAddress = settings.AdvertiseAddress,
            },
            deadline: time.GetUtcNow().UtcDateTime.AddSeconds(15),
            cancellationToken: cancellation);
        return Accept(response.SvidChainPem, response.TrustBundlePem, key, current.Bundle, current.Svid.Id);
    }

    // The new bundle must itself be trusted by the bundle we already hold: a control plane cannot be
    // talked into handing us a foreign root without also holding the current one's key.
    // An SVID for another identity than the one held is refused before it is published.
    private X509Svid Accept(string chainPem, string bundlePem, ECDsa key, TrustBundle trusted, SpiffeId? expected)
    {
        var now = time.GetUtcNow();
        var svid = X509Svid.Create(chainPem, key, trusted, now);
        if (expected is { } held && svid.Id != held)
        {
            throw new AttestationRefusedException($"control plane issued {svid.Id} instead of {held}");
        }
        var bundle = TrustBundle.FromPem(bundlePem);
        if (bundle.TrustDomain != trusted.TrustDomain)
        {
            throw new AttestationRefusedException($"control plane sent a bundle for trust domain {bundle.TrustDomain}, expected {trusted.TrustDomain}");
        }
        // Re-verify against the new bundle too, so we never publish an SVID the new bundle would refuse.
        var verified = X509SvidVerifier.Verify(svid.Certificate, svid.Intermediates, bundle, now);
        if (!verified.IsValid)
        {
            throw new AttestationRefusedException($"SVID does not verify against the new trust bundle: {verified.Error}");
        }
        identity.Publish(svid, bundle, key);
        return svid;
    }

    private static string CreateCsrWithoutIdentity(ECDsa key)
    {
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=meshguard-sidecar", key, HashAlgorithmName.SHA256);
        return request.CreateSigningRequestPem();
    }

    private static async Task<string> ReadErrorAsync(HttpResponseMessage response, CancellationToken cancellation)
    {
        try
        {
            var error = await response.Content.ReadFromJsonAsync(ContractsJsonContext.Default.ErrorResponse, cancellation);
            return $"{(int)response.StatusCode} {error?.Error}";
        }
        catch (System.Text.Json.JsonException)
        {
            return $"{(int)response.StatusCode} {response.ReasonPhrase}";
        }
    }
}

/// <summary>The control plane said no, or said something that cannot be trusted. Retrying will not help.</summary>
internal sealed class AttestationRefusedException(string message) : Exception(message);
