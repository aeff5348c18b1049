using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using MeshGuard.ControlPlane.Attestation;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.ControlPlane.Tests.Attestation;

/// <summary>Projected service-account tokens, signed in the test by a cluster issuer's keys made here.</summary>
public sealed class ServiceAccountTokenVerifierTests : IAsyncDisposable
{
    private const string Issuer = TestTokenIssuer.DefaultIssuer;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-24T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
    private readonly TestTokenIssuer _issuer = new();
    private readonly ServiceAccountTokenVerifier _verifier;

    public ServiceAccountTokenVerifierTests() =>
        _verifier = new ServiceAccountTokenVerifier(ServiceAccountTokenVerifier.ParseJwks(_issuer.Jwks()), Issuer, "meshguard", "mesh.local", _time);

    public ValueTask DisposeAsync() => _issuer.DisposeAsync();

    private static string B64(byte[] bytes) => TestTokenIssuer.B64(bytes);

    private JsonObject Claims(string audience = "meshguard", TimeSpan? expiresIn = null, string subject = "system:serviceaccount:shop:orders") =>
        _issuer.Claims(_time.GetUtcNow(), audience, expiresIn, subject);

    private static string Sign(JsonObject claims, string alg, string kid, AsymmetricAlgorithm key) => TestTokenIssuer.Sign(claims, alg, kid, key);

    private string Refusal(string token)
    {
        Assert.False(_verifier.TryVerify(token, out var id, out var error));
        Assert.Null(id);
        return error!;
    }

    [Fact]
    public void ATokenOfTheIssuerForMeshguardMapsToTheServiceAccountsSpiffeId()
    {
        Assert.True(_verifier.TryVerify(Sign(Claims(), "RS256", "rsa-1", _issuer.Rsa), out var id, out var error), error);
        Assert.Equal("spiffe://mesh.local/ns/shop/sa/orders", id!.ToString());
        Assert.True(_verifier.TryVerify(Sign(Claims(subject: "system:serviceaccount:billing:api"), "ES256", "ec-1", _issuer.Ec), out id, out error), error);
        Assert.Equal("spiffe://mesh.local/ns/billing/sa/api", id!.ToString());
    }

    [Fact]
    public void ATokenForAnotherAudienceIsRefused() =>
        Assert.Contains("audience", Refusal(Sign(Claims(audience: "https://kubernetes.default.svc"), "RS256", "rsa-1", _issuer.Rsa)), StringComparison.Ordinal);

    [Fact]
    public void AnExpiredTokenIsRefused()
    {
        var token = Sign(Claims(expiresIn: TimeSpan.FromMinutes(10)), "RS256", "rsa-1", _issuer.Rsa);
        _time.Advance(TimeSpan.FromMinutes(11));
        Assert.Contains("expired", Refusal(token), StringComparison.Ordinal);
    }

    [Fact]
    public void ATokenSignedByAnUnknownKeyIsRefusedEvenUnderAKnownKid()
    {
        using var stranger = RSA.Create(2048);
        Assert.Contains("does not verify", Refusal(Sign(Claims(), "RS256", "rsa-1", stranger)), StringComparison.Ordinal);
        Assert.Contains("unknown key", Refusal(Sign(Claims(), "RS256", "rsa-2", stranger)), StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnsignedOrTamperedTokenIsRefused()
    {
        var token = Sign(Claims(), "RS256", "rsa-1", _issuer.Rsa);
        var parts = token.Split('.');
        var forged = B64(Encoding.UTF8.GetBytes(Claims(subject: "system:serviceaccount:kube-system:admin").ToJsonString()));
        Assert.Contains("does not verify", Refusal(parts[0] + "." + forged + "." + parts[2]), StringComparison.Ordinal);
        var none = B64(Encoding.UTF8.GetBytes("{\"alg\":\"none\",\"kid\":\"rsa-1\"}"));
        Assert.Contains("not accepted", Refusal(none + "." + parts[1] + "."), StringComparison.Ordinal);
        Assert.Contains("not a signed JWT", Refusal("garbage"), StringComparison.Ordinal);
    }

    [Fact]
    public void ATokenOfAnotherIssuerOrForNoServiceAccountIsRefused()
    {
        var other = Claims();
        other["iss"] = "https://evil.example";
        Assert.Contains("another issuer", Refusal(Sign(other, "RS256", "rsa-1", _issuer.Rsa)), StringComparison.Ordinal);
        Assert.Contains("no service account", Refusal(Sign(Claims(subject: "admin"), "RS256", "rsa-1", _issuer.Rsa)), StringComparison.Ordinal);
    }
}
