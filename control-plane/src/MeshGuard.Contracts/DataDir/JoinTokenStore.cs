using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using MeshGuard.Spiffe;

namespace MeshGuard.Contracts.DataDir;

/// <summary>
/// One-time join tokens, bound to one SPIFFE ID and an expiry. Only a SHA-256 of each token is stored, so
/// reading the data directory does not reveal a usable token. A token is spent by an atomic rename into
/// used/, so two control-plane processes can never both accept it.
/// </summary>
public sealed class JoinTokenStore
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
        if (ttl <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ttl), "token TTL must be positive");
        }
        var token = Prefix + Base64Url(RandomNumberGenerator.GetBytes(32));
        var now = _time.GetUtcNow();
        var record = new JoinTokenRecord(id.ToString(), now, now + ttl);
        Directory.CreateDirectory(_usedDirectory);
        SecureFile.WriteAtomically(PathFor(_directory, token), JsonSerializer.Serialize(record, DataDirJsonContext.Default.JoinTokenRecord), secret: true);
        return token;
    }

    /// <summary>Looks a token up without spending it.</summary>
    public JoinTokenLookup Find(string? token)
    {
        if (string.IsNullOrEmpty(token) || !token.StartsWith(Prefix, StringComparison.Ordinal) || token.Length > 128)
        {
            return JoinTokenLookup.Refused(JoinTokenStatus.Unknown);
        }
        var record = Read(PathFor(_directory, token));
        if (record is null)
        {
            return JoinTokenLookup.Refused(File.Exists(PathFor(_usedDirectory, token)) ? JoinTokenStatus.AlreadyUsed : JoinTokenStatus.Unknown);
        }
        if (_time.GetUtcNow() >= record.ExpiresAt)
        {
            return JoinTokenLookup.Refused(JoinTokenStatus.Expired);
        }
        return SpiffeId.TryParse(record.SpiffeId, out var id, out _)
            ? new JoinTokenLookup(JoinTokenStatus.Valid, id)
            : JoinTokenLookup.Refused(JoinTokenStatus.Unknown);
    }

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

    private static string PathFor(string directory, string token) =>
        Path.Combine(directory, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token))) + ".json");

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
internal sealed partial class DataDirJsonContext : JsonSerializerContext;
