using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace MeshGuard.ControlPlane.Review;

/// <summary>
/// Sessions of the reviewer's console: a random cookie value, kept here only as its SHA-256 with an expiry
/// (8 hours). In memory: a restarted control plane asks for a new login URL.
/// </summary>
internal sealed class ConsoleSessions(TimeProvider time)
{
    public const string Cookie = "meshguard_console";
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(8);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _sessions = new(StringComparer.Ordinal);

    /// <summary>A new session; the value goes into the cookie and nowhere else.</summary>
    public string Open()
    {
        var now = time.GetUtcNow();
        foreach (var (key, expires) in _sessions)
        {
            if (expires <= now)
            {
                _sessions.TryRemove(key, out _);
            }
        }
        var value = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        _sessions[Hash(value)] = now + Lifetime;
        return value;
    }

    public bool IsValid(string? value) =>
        value is { Length: > 0 and < 100 } && _sessions.TryGetValue(Hash(value), out var expires) && time.GetUtcNow() < expires;

    private static string Hash(string value) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));
}
