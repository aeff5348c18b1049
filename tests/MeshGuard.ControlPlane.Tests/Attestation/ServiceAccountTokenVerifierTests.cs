using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using MeshGuard.ControlPlane.Attestation;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.ControlPlane.Tests.Attestation;

/// <summary>Projected service-account tokens, signed in the test by a cluster issuer's keys made here.</summary>
public sealed class ServiceAccountTokenVerifierTests : IDisposable
{
    private const string Issuer = "https://kubernetes.default.svc.cluster.local";
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-24T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
    private readonly RSA _rsa = RSA.Create(2048);
    private readonly ECDsa _ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ServiceAccountTokenVerifier _verifier;

    public ServiceAccountTokenVerifierTests()
    {
        var rsa = _rsa.ExportParameters(false);
        var ec = _ec.ExportParameters(false);
        var jwks = new JsonObject
        {
            ["keys"] = new JsonArray(
                new JsonObject { ["kty"] = "RSA", ["kid"] = "rsa-1", ["alg"] = "RS256", ["use"] = "sig", ["n"] = B64(rsa.Modulus!), ["e"] = B64(rsa.Exponent!) },
                new JsonObject { ["kty"] = "EC", ["kid"] = "ec-1", ["crv"] = "P-256", ["x"] = B64(ec.Q.X!), ["y"] = B64(ec.Q.Y!) }),
        };
        _verifier = new ServiceAccountTokenVerifier(ServiceAccountTokenVerifier.ParseJwks(jwks.ToJsonString()), Issuer, "meshguard", "mesh.local", _time);
    }

    public void Dispose()
    {
        _rsa.Dispose();
        _ec.Dispose();
    }

    private static string B64(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private JsonObject Claims(string audience = "meshguard", TimeSpan? expiresIn = null, string subject = "system:serviceaccount:shop:orders") => new()
    {
        ["iss"] = Issuer,
        ["aud"] = new JsonArray(audience),
        ["sub"] = subject,
        ["iat"] = _time.GetUtcNow().ToUnixTimeSeconds(),
        ["nbf"] = _time.GetUtcNow().ToUnixTimeSeconds(),
        ["exp"] = (_time.GetUtcNow() + (expiresIn ?? TimeSpan.FromHours(1))).ToUnixTimeSeconds(),
        ["kubernetes.io"] = new JsonObject { ["namespace"] = "shop", ["serviceaccount"] = new JsonObject { ["name"] = "orders" } },
    };

    private static string Sign(JsonObject claims, string alg, string kid, AsymmetricAlgorithm key)
    {
        var header = B64(Encoding.UTF8.GetBytes(new JsonObject { ["alg"] = alg, ["kid"] = kid, ["typ"] = "JWT" }.ToJsonString()));
        var payload = B64(Encoding.UTF8.GetBytes(claims.ToJsonString()));
        var signed = Encoding.ASCII.GetBytes(header + "." + payload);
        var signature = key switch
        {
            RSA rsa => rsa.SignData(signed, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
            ECDsa ec => ec.SignData(signed, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
            _ => throw new ArgumentException("RSA or ECDsa keys only", nameof(key)),
        };
        return header + "." + payload + "." + B64(signature);
    }

    private string Refusal(string token)
    {
        Assert.False(_verifier.TryVerify(token, out var id, out var error));
        Assert.Null(id);
        return error!;
    }

    [Fact]
    public void ATokenOfTheIssuerForMeshguardMapsToTheServiceAccountsSpiffeId()
    {
        Assert.True(_verifier.TryVerify(Sign(Claims(), "RS256", "rsa-1", _rsa), out var id, out var error), error);
        Assert.Equal("spiffe://mesh.local/ns/shop/sa/orders", id!.ToString());
        Assert.True(_verifier.TryVerify(Sign(Claims(subject: "system:serviceaccount:billing:api"), "ES256", "ec-1", _ec), out id, out error), error);
        Assert.Equal("spiffe://mesh.local/ns/billing/sa/api", id!.ToString());
    }

    [Fact]
    public void ATokenForAnotherAudienceIsRefused() =>
        Assert.Contains("audience", Refusal(Sign(Claims(audience: "https://kubernetes.default.svc"), "RS256", "rsa-1", _rsa)), StringComparison.Ordinal);

    [Fact]
    public void AnExpiredTokenIsRefused()
    {
        var token = Sign(Claims(expiresIn: TimeSpan.FromMinutes(10)), "RS256", "rsa-1", _rsa);
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
        var token = Sign(Claims(), "RS256", "rsa-1", _rsa);
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
        Assert.Contains("another issuer", Refusal(Sign(other, "RS256", "rsa-1", _rsa)), StringComparison.Ordinal);
        Assert.Contains("no service account", Refusal(Sign(Claims(subject: "admin"), "RS256", "rsa-1", _rsa)), StringComparison.Ordinal);
    }
}
