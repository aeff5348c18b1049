using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MeshGuard.Tests.Common;

/// <summary>
/// A Kubernetes service-account token issuer made in the test: an RSA key (kid rsa-1) and a P-256 key (kid
/// ec-1), their JWKS document, projected-token claims, and, on request, the issuer's OIDC discovery document
/// and JWKS served on a loopback port, as an API server serves them.
/// </summary>
public sealed class TestTokenIssuer : IAsyncDisposable
{
    public const string DefaultIssuer = "https://kubernetes.default.svc.cluster.local";

    private WebApplication? _server;

    public TestTokenIssuer(string issuer = DefaultIssuer) => Issuer = issuer;

    public string Issuer { get; }

    public RSA Rsa { get; } = RSA.Create(2048);

    public ECDsa Ec { get; } = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public static string B64(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public string Jwks()
    {
        var rsa = Rsa.ExportParameters(false);
        var ec = Ec.ExportParameters(false);
        return new JsonObject
        {
            ["keys"] = new JsonArray(
                new JsonObject { ["kty"] = "RSA", ["kid"] = "rsa-1", ["alg"] = "RS256", ["use"] = "sig", ["n"] = B64(rsa.Modulus!), ["e"] = B64(rsa.Exponent!) },
                new JsonObject { ["kty"] = "EC", ["kid"] = "ec-1", ["crv"] = "P-256", ["x"] = B64(ec.Q.X!), ["y"] = B64(ec.Q.Y!) }),
        }.ToJsonString();
    }

    /// <summary>The claims the kubelet's projected token carries for <paramref name="subject"/>.</summary>
    public JsonObject Claims(DateTimeOffset now, string audience = "meshguard", TimeSpan? expiresIn = null, string subject = "system:serviceaccount:shop:orders") => new()
    {
        ["iss"] = Issuer,
        ["aud"] = new JsonArray(audience),
        ["sub"] = subject,
        ["iat"] = now.ToUnixTimeSeconds(),
        ["nbf"] = now.ToUnixTimeSeconds(),
        ["exp"] = (now + (expiresIn ?? TimeSpan.FromHours(1))).ToUnixTimeSeconds(),
        ["kubernetes.io"] = new JsonObject { ["namespace"] = "shop", ["serviceaccount"] = new JsonObject { ["name"] = "orders" } },
    };

    /// <summary>A token signed with this issuer's RSA key.</summary>
    public string Sign(JsonObject claims) => Sign(claims, "RS256", "rsa-1", Rsa);

    public static string Sign(JsonObject claims, string alg, string kid, AsymmetricAlgorithm key)
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

    /// <summary>
    /// Serves /.well-known/openid-configuration (naming <paramref name="documentIssuer"/>, the issuer by default)
    /// and /openid/v1/jwks on a loopback port; returns the discovery URL.
    /// </summary>
    public async Task<Uri> ServeDiscoveryAsync(string? documentIssuer = null)
    {
        _server = LoopbackApp.CreateBuilder().Build();
        _server.MapGet("/openid/v1/jwks", () => Results.Text(Jwks(), "application/json"));
        _server.MapGet("/.well-known/openid-configuration", (HttpContext context) =>
        {
            var self = $"http://{context.Request.Host}";
            return Results.Text(new JsonObject
            {
                ["issuer"] = documentIssuer ?? Issuer,
                ["jwks_uri"] = self + "/openid/v1/jwks",
                ["response_types_supported"] = new JsonArray("id_token"),
                ["subject_types_supported"] = new JsonArray("public"),
                ["id_token_signing_alg_values_supported"] = new JsonArray("RS256"),
            }.ToJsonString(), "application/json");
        });
        var address = await LoopbackApp.StartAsync(_server);
        return new Uri(new Uri(address), "/.well-known/openid-configuration");
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.StopAsync();
            await _server.DisposeAsync();
        }
        Rsa.Dispose();
        Ec.Dispose();
    }
}
