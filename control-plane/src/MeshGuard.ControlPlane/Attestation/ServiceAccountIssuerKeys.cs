using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

using MeshGuard.ControlPlane.Hosting;

namespace MeshGuard.ControlPlane.Attestation;

/// <summary>
/// The issuer's current keys, as a ready verifier. Loaded once at startup (a source that cannot be read stops
/// the control plane with the reason), then read again every minute; a refresh that fails keeps the last good
/// keys and says why in the log, so a flaky API server never turns attestation off.
/// </summary>
internal sealed partial class ServiceAccountIssuerKeys(ServiceAccountIssuer? issuer, string trustDomain, TimeProvider time, ILogger<ServiceAccountIssuerKeys> logger)
    : BackgroundService
{
    private const int MaxDocumentBytes = 1024 * 1024;
    private ServiceAccountTokenVerifier? _verifier;
    // The JWKS document in force: an unchanged document is not parsed into keys again.
    private string? _jwks;

    /// <summary>Null when the control plane takes join tokens only.</summary>
    public ServiceAccountTokenVerifier? Verifier => Volatile.Read(ref _verifier);

    public bool Enabled => issuer is not null;

    /// <summary>The first load; its failure is the caller's (startup stops).</summary>
    public async Task LoadAsync(CancellationToken cancellation)
    {
        if (issuer is null)
        {
            return;
        }
        try
        {
            await RefreshAsync(issuer, cancellation);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellation.IsCancellationRequested)
        {
            throw new IOException($"service-account issuer keys from {issuer.Source}: {e.Message}", e);
        }
        catch (FormatException e)
        {
            throw new FormatException($"service-account issuer keys: {e.Message}", e);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (issuer is null)
        {
            return;
        }
        while (!stoppingToken.IsCancellationRequested)
        {
            await Task.Delay(ServiceAccountIssuer.RefreshInterval, time, stoppingToken);
            try
            {
                await RefreshAsync(issuer, stoppingToken);
            }
            catch (Exception e) when (e is FormatException or IOException or HttpRequestException or TaskCanceledException or UnauthorizedAccessException && !stoppingToken.IsCancellationRequested)
            {
                LogRefreshFailed(logger, issuer.Source, e.Message);
            }
        }
    }

    private async Task RefreshAsync(ServiceAccountIssuer source, CancellationToken cancellation)
    {
        var jwks = source.JwksFile is { } file ? await File.ReadAllTextAsync(file, cancellation) : await DiscoverAsync(source, cancellation);
        if (jwks == _jwks)
        {
            return;
        }
        Dictionary<string, AsymmetricAlgorithm> keys;
        try
        {
            keys = ServiceAccountTokenVerifier.ParseJwks(jwks);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or CryptographicException)
        {
            throw new FormatException($"{source.Source}: not a usable JWKS document: {e.Message}");
        }
        if (keys.Count == 0)
        {
            throw new FormatException($"{source.Source}: the JWKS document has no RSA or P-256 key");
        }
        Volatile.Write(ref _verifier, new ServiceAccountTokenVerifier(keys, source.Issuer, source.Audience, trustDomain, time));
        _jwks = jwks;
        LogLoaded(logger, string.Join(',', keys.Keys.Order(StringComparer.Ordinal)), source.Source);
    }

    /// <summary>OIDC discovery: the issuer's document names its jwks_uri; the document must be the issuer's own.</summary>
    private static async Task<string> DiscoverAsync(ServiceAccountIssuer source, CancellationToken cancellation)
    {
        using var handler = new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(5) };
        handler.SslOptions.CertificateChainPolicy = MeshGuard.Spiffe.SvidTls.OfflineChainPolicy();
        if (source.DiscoveryCaFile is { } caFile)
        {
            var trusted = new X509Certificate2Collection();
            trusted.ImportFromPemFile(caFile);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (certificate is null || (errors & ~System.Net.Security.SslPolicyErrors.RemoteCertificateChainErrors) != 0)
                {
                    return false;
                }
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(trusted);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                chain.ChainPolicy.DisableCertificateDownloads = true;
                return chain.Build(new X509Certificate2(certificate));
            };
        }
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10), MaxResponseContentBufferSize = MaxDocumentBytes };
        var bearer = source.DiscoveryTokenFile is { } tokenFile ? (await File.ReadAllTextAsync(tokenFile, cancellation)).Trim() : null;
        var discovery = await GetAsync(client, source.DiscoveryUrl!, bearer, cancellation);
        string? issuer, jwksUri;
        try
        {
            using var document = JsonDocument.Parse(discovery);
            issuer = document.RootElement.GetProperty("issuer").GetString();
            jwksUri = document.RootElement.GetProperty("jwks_uri").GetString();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new FormatException($"{source.DiscoveryUrl}: not an OIDC discovery document: {e.Message}");
        }
        if (issuer != source.Issuer)
        {
            throw new FormatException($"{source.DiscoveryUrl}: the document is for issuer '{issuer}', not '{source.Issuer}'");
        }
        if (!Uri.TryCreate(jwksUri, UriKind.Absolute, out var jwks) || !Allowed(jwks))
        {
            throw new FormatException($"{source.DiscoveryUrl}: jwks_uri '{jwksUri}' must be an https URL (http only on loopback)");
        }
        return await GetAsync(client, jwks, bearer, cancellation);
    }

    /// <summary>Keys come over https; plain http only from this machine (a local issuer in tests, or a kubectl proxy).</summary>
    public static bool Allowed(Uri uri) => uri.Scheme == Uri.UriSchemeHttps || (uri.Scheme == Uri.UriSchemeHttp && uri.IsLoopback);

    private static async Task<string> GetAsync(HttpClient client, Uri uri, string? bearer, CancellationToken cancellation)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        if (bearer is { Length: > 0 })
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }
        using var response = await client.SendAsync(request, cancellation);
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"{uri}: {(int)response.StatusCode} {response.ReasonPhrase}");
        }
        return await response.Content.ReadAsStringAsync(cancellation);
    }

    [LoggerMessage(EventId = 60, Level = LogLevel.Information, Message = "service-account attestation: issuer keys {Kids} from {Source}")]
    private static partial void LogLoaded(ILogger logger, string kids, string source);

    [LoggerMessage(EventId = 61, Level = LogLevel.Warning, Message = "service-account attestation: could not read the issuer keys from {Source} ({Reason}); the last good keys stay in use")]
    private static partial void LogRefreshFailed(ILogger logger, string source, string reason);
}
