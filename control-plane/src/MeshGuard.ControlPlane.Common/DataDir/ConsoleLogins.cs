using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using MeshGuard.Contracts;

namespace MeshGuard.ControlPlane.Common.DataDir;

/// <summary>
/// One-time logins to the reviewer's console: <c>meshctl console url</c> makes a random token that lives a minute,
/// keeps only its SHA-256 in the data directory (0600), and prints a URL carrying it; the control plane spends it
/// (an atomic rename, so a URL works once) and answers with a session cookie.
/// </summary>
public sealed class ConsoleLogins(DataDirectory data, TimeProvider time)
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(1);
    private const string Prefix = "mgcl_";

    public string Create()
    {
        var token = Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var expires = (time.GetUtcNow() + Lifetime).ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        SecureFile.WriteAtomically(PathOf(token), expires, secret: true);
        return token;
    }

    /// <summary>True once for a token made here and not expired; every later or forged try is false.</summary>
    public bool TrySpend(string? token)
    {
        if (string.IsNullOrEmpty(token) || !token.StartsWith(Prefix, StringComparison.Ordinal) || token.Length > 100)
        {
            return false;
        }
        var file = PathOf(token);
        var spent = file + ".spent";
        try
        {
            File.Move(file, spent, overwrite: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // never made, or spent already
        }
        var text = File.ReadAllText(spent);
        File.Delete(spent);
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var expires) && time.GetUtcNow().ToUnixTimeMilliseconds() < expires;
    }

    private string PathOf(string token) =>
        Path.Combine(data.ConsoleLoginsDirectory, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token))));
}
