using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using MeshGuard.Contracts;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Common.DataDir;

/// <summary>
/// One-time join tokens, bound to one SPIFFE ID and an expiry. Only a SHA-256 of each token is stored, so
/// reading the data directory does not reveal a usable token. A token is spent by an atomic rename into
/// used/, so two control-plane processes can never both accept it. (With several replicas the tokens live in
/// etcd instead, spent by a transaction; both follow <see cref="IJoinTokens"/>.)
/// </summary>
public sealed class JoinTokenStore : IJoinTokens
{
    private const string Prefix = "mgjt_";
    private readonly string _directory;
    private readonly string _usedDirectory;
    private readonly TimeProvider _time;

    public JoinTokenStore(string dataDirectory, TimeProvider time)
    {
        _directory = Path.Combine(dataDirectory, "tokens");
        _usedDirectory = Path.Combine(_directory, "used");
        _time = time;
    }

    /// <summary>Creates a token and returns it; only its hash is written.</summary>
    public string Create(SpiffeId id, TimeSpan ttl)
    {
        var (token, record) = NewToken(id, ttl, _time);
        Directory.CreateDirectory(_usedDirectory);
        SecureFile.WriteAtomically(PathFor(_directory, token), JsonSerializer.Serialize(record, DataDirJsonContext.Default.JoinTokenRecord), secret: true);
        return token;
    }

    /// <summary>Looks a token up without spending it.</summary>
    public JoinTokenLookup Find(string? token)
    {
        if (!IsWellFormed(token))
        {
            return JoinTokenLookup.Refused(JoinTokenStatus.Unknown);
        }
        var record = Read(PathFor(_directory, token));
        return record is null
            ? JoinTokenLookup.Refused(File.Exists(PathFor(_usedDirectory, token)) ? JoinTokenStatus.AlreadyUsed : JoinTokenStatus.Unknown)
            : Evaluate(record, _time);
    }

    /// <summary>A new token for <paramref name="id"/> and the record that is stored under its hash.</summary>
    public static (string Token, JoinTokenRecord Record) NewToken(SpiffeId id, TimeSpan ttl, TimeProvider time)
    {
        if (ttl <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ttl), "token TTL must be positive");
        }
        if (!id.IsWorkload)
        {
            throw new ArgumentException($"'{id}' names a trust domain, not a workload: a join token admits one workload", nameof(id));
        }
        var now = time.GetUtcNow();
        return (Prefix + Base64Url(RandomNumberGenerator.GetBytes(32)), new JoinTokenRecord(id.ToString(), now, now + ttl));
    }

    /// <summary>Whether <paramref name="token"/> has a join token's shape (anything else is unknown without a lookup).</summary>
    public static bool IsWellFormed([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] string? token) =>
        !string.IsNullOrEmpty(token) && token.StartsWith(Prefix, StringComparison.Ordinal) && token.Length <= 128;

    /// <summary>The hex SHA-256 that a token is stored under: the store never holds a usable token.</summary>
    public static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>What a stored, unspent record admits now.</summary>
    public static JoinTokenLookup Evaluate(JoinTokenRecord record, TimeProvider time)
    {
        if (time.GetUtcNow() >= record.ExpiresAt)
        {
            return JoinTokenLookup.Refused(JoinTokenStatus.Expired);
        }
        return SpiffeId.TryParseWorkload(record.SpiffeId, out var id, out _)
            ? new JoinTokenLookup(JoinTokenStatus.Valid, id)
            : JoinTokenLookup.Refused(JoinTokenStatus.Unknown);
    }

    public Task<string> CreateAsync(SpiffeId id, TimeSpan ttl, CancellationToken cancellation) => Task.FromResult(Create(id, ttl));

    public Task<JoinTokenLookup> FindAsync(string? token, CancellationToken cancellation) => Task.FromResult(Find(token));

    public Task<JoinTokenLookup> ConsumeAsync(string? token, CancellationToken cancellation) => Task.FromResult(Consume(token));

    /// <summary>Spends a token: exactly one caller succeeds.</summary>
    public JoinTokenLookup Consume(string? token)
    {
        var lookup = Find(token);
        if (lookup.Status != JoinTokenStatus.Valid)
        {
            return lookup;
        }
        try
        {
            Directory.CreateDirectory(_usedDirectory);
            File.Move(PathFor(_directory, token!), PathFor(_usedDirectory, token!), overwrite: false);
            return lookup;
        }
        catch (IOException)
        {
            // Someone else spent it between Find and Move.
            return JoinTokenLookup.Refused(JoinTokenStatus.AlreadyUsed);
        }
    }

    private static JoinTokenRecord? Read(string path)
    {
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), DataDirJsonContext.Default.JoinTokenRecord);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string PathFor(string directory, string token) => Path.Combine(directory, Hash(token) + ".json");

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

public enum JoinTokenStatus
{
    Valid,
    Unknown,
    AlreadyUsed,
    Expired,
}

public readonly record struct JoinTokenLookup(JoinTokenStatus Status, SpiffeId? SpiffeId)
{
    public static JoinTokenLookup Refused(JoinTokenStatus status) => new(status, null);

    public string Describe() => Status switch
    {
        JoinTokenStatus.Valid => "join token is valid",
        JoinTokenStatus.AlreadyUsed => "join token was already used",
        JoinTokenStatus.Expired => "join token has expired",
        _ => "join token is unknown",
    };
}

public sealed record JoinTokenRecord(
    [property: JsonPropertyName("spiffe_id")] string SpiffeId,
    [property: JsonPropertyName("created_at")] DateTimeOffset CreatedAt,
    [property: JsonPropertyName("expires_at")] DateTimeOffset ExpiresAt);

[JsonSerializable(typeof(JoinTokenRecord))]
public sealed partial class DataDirJsonContext : JsonSerializerContext;

/// <summary>One-time join tokens, wherever they are kept: create, look up without spending, spend exactly once.</summary>
public interface IJoinTokens
{
    Task<string> CreateAsync(SpiffeId id, TimeSpan ttl, CancellationToken cancellation);

    Task<JoinTokenLookup> FindAsync(string? token, CancellationToken cancellation);

    /// <summary>Spends a token: of any number of concurrent callers, on any replica, exactly one gets Valid.</summary>
    Task<JoinTokenLookup> ConsumeAsync(string? token, CancellationToken cancellation);
}
