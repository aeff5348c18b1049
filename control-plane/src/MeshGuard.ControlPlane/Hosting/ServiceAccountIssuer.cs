namespace MeshGuard.ControlPlane.Hosting;

/// <summary>
/// The cluster whose projected service-account tokens the bootstrap port accepts in place of a join token:
/// its issuer (the <c>iss</c> of its tokens), and where its signing keys are, as a JWKS file (a ConfigMap
/// copy of the API server's <c>/openid/v1/jwks</c>) or the issuer's OIDC discovery document.
/// </summary>
internal sealed record ServiceAccountIssuer(
    string Issuer,
    string Audience,
    string? JwksFile,
    Uri? DiscoveryUrl,
    string? DiscoveryCaFile,
    string? DiscoveryTokenFile)
{
    public const string DefaultAudience = "meshguard";

    /// <summary>How often the keys are read again (the API server rotates its signing key rarely, and keeps the old one listed).</summary>
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(60);

    public string Source => JwksFile ?? DiscoveryUrl!.ToString();
}
