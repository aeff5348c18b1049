using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Attestation;

/// <summary>
/// Checks a Kubernetes projected service-account token (a JWT) as the cluster's API server issued it: the
/// signature against the issuer's keys (JWKS; RS256 or ES256, never "none"), the issuer, the audience
/// (<c>meshguard</c>), and expiry, then maps <c>system:serviceaccount:NS:SA</c> to
/// <c>spiffe://TD/ns/NS/sa/SA</c>. A refusal says why, for the log; the caller learns only that it failed.
/// </summary>
internal sealed class ServiceAccountTokenVerifier(IReadOnlyDictionary<string, AsymmetricAlgorithm> keys, string issuer, string audience, string trustDomain, TimeProvider time)
{
    // Clocks of nodes and control plane may differ a little; Kubernetes tokens live an hour or more.
    private static readonly TimeSpan Skew = TimeSpan.FromSeconds(30);
    private const int MaxTokenLength = 16 * 1024;
    private const string SubjectPrefix = "system:serviceaccount:";

    /// <summary>Keys of a JWKS document (<c>{"keys":[...]}</c>), by <c>kid</c>: RSA and EC P-256 public keys.</summary>
    public static Dictionary<string, AsymmetricAlgorithm> ParseJwks(string json)
    {
        using var document = JsonDocument.Parse(json);
        var keys = new Dictionary<string, AsymmetricAlgorithm>(StringComparer.Ordinal);
        foreach (var key in document.RootElement.GetProperty("keys").EnumerateArray())
        {
            var kid = key.TryGetProperty("kid", out var id) ? id.GetString() ?? "" : "";
            switch (key.GetProperty("kty").GetString())
            {
                case "RSA":
                    var rsa = RSA.Create();
                    rsa.ImportParameters(new RSAParameters { Modulus = Base64Url(key.GetProperty("n").GetString()!), Exponent = Base64Url(key.GetProperty("e").GetString()!) });
                    keys[kid] = rsa;
                    break;
                case "EC" when key.GetProperty("crv").GetString() == "P-256":
                    keys[kid] = ECDsa.Create(new ECParameters
                    {
                        Curve = ECCurve.NamedCurves.nistP256,
                        Q = new ECPoint { X = Base64Url(key.GetProperty("x").GetString()!), Y = Base64Url(key.GetProperty("y").GetString()!) },
                    });
                    break;
                default:
                    break; // a key type we do not verify with is skipped, not trusted
            }
        }
        return keys;
    }

    public bool TryVerify(string token, out SpiffeId? id, out string? error)
    {
        id = null;
        error = Check(token, out var subject);
        if (error is not null)
        {
            return false;
        }
        var parts = subject![SubjectPrefix.Length..].Split(':');
        if (parts.Length != 2)
        {
            error = $"subject '{subject}' is not system:serviceaccount:NS:SA";
            return false;
        }
        if (!SpiffeId.TryParse($"{SpiffeId.Scheme}{trustDomain}/ns/{parts[0]}/sa/{parts[1]}", out id, out var idError))
        {
            error = $"subject '{subject}' makes no SPIFFE ID: {idError}";
            return false;
        }
        return true;
    }

    private string? Check(string token, out string? subject)
    {
        subject = null;
        if (token.Length > MaxTokenLength)
        {
            return "token is too long";
        }
        var parts = token.Split('.');
        if (parts.Length != 3)
        {
            return "not a signed JWT (header.payload.signature)";
        }
        byte[] headerBytes, payloadBytes, signature;
        try
        {
            headerBytes = Base64Url(parts[0]);
            payloadBytes = Base64Url(parts[1]);
            signature = Base64Url(parts[2]);
        }
        catch (FormatException)
        {
            return "token is not base64url";
        }
        try
        {
            using var header = JsonDocument.Parse(headerBytes);
            var alg = header.RootElement.TryGetProperty("alg", out var a) ? a.GetString() : null;
            var kid = header.RootElement.TryGetProperty("kid", out var k) ? k.GetString() ?? "" : "";
            if (!keys.TryGetValue(kid, out var key))
            {
                return $"signed by an unknown key '{kid}'";
            }
            var signed = Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]);
            var valid = (alg, key) switch
            {
                ("RS256", RSA rsa) => rsa.VerifyData(signed, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
                ("ES256", ECDsa ec) => ec.VerifyData(signed, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
                _ => false,
            };
            if (!valid)
            {
                return alg is "RS256" or "ES256" ? "signature does not verify" : $"algorithm '{alg}' is not accepted";
            }
            using var payload = JsonDocument.Parse(payloadBytes);
            var claims = payload.RootElement;
            if (!claims.TryGetProperty("iss", out var iss) || iss.GetString() != issuer)
            {
                return "issued by another issuer";
            }
            if (!HasAudience(claims))
            {
                return $"not meant for audience '{audience}'";
            }
            var now = time.GetUtcNow();
            if (!claims.TryGetProperty("exp", out var exp) || exp.ValueKind != JsonValueKind.Number
                || DateTimeOffset.FromUnixTimeSeconds(exp.GetInt64()) + Skew <= now)
            {
                return "token has expired";
            }
            if (claims.TryGetProperty("nbf", out var nbf) && nbf.ValueKind == JsonValueKind.Number && DateTimeOffset.FromUnixTimeSeconds(nbf.GetInt64()) - Skew > now)
            {
                return "token is not valid yet";
            }
            subject = claims.TryGetProperty("sub", out var sub) ? sub.GetString() : null;
            return subject is not null && subject.StartsWith(SubjectPrefix, StringComparison.Ordinal) ? null : "subject is no service account";
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or CryptographicException)
        {
            return $"token does not parse: {e.Message}";
        }
    }

    private bool HasAudience(JsonElement claims)
    {
        if (!claims.TryGetProperty("aud", out var aud))
        {
            return false;
        }
        if (aud.ValueKind == JsonValueKind.String)
        {
            return aud.GetString() == audience;
        }
        if (aud.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in aud.EnumerateArray())
            {
                if (item.ValueKind == JsonValueKind.String && item.GetString() == audience)
                {
                    return true;
                }
            }
        }
        return false;
    }

    private static byte[] Base64Url(string text)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        padded += (padded.Length % 4) switch { 2 => "==", 3 => "=", 0 => "", _ => throw new FormatException("bad base64url length") };
        return Convert.FromBase64String(padded);
    }
}
