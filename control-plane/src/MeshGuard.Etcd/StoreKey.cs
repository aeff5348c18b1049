using System.Security.Cryptography;
using System.Text;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Common.DataDir;

namespace MeshGuard.Etcd;

/// <summary>
/// The key that seals secrets (the CA's private keys) before they go into the store: AES-256-GCM, a fresh nonce
/// per value, and the value's store key as associated data, so a sealed value moved to another key does not
/// open. Replicas get it from <c>MESHGUARD_STORE_KEY</c> (base64 of 32 bytes) or a 0600 file; it never goes into
/// the store or a log.
/// </summary>
public sealed class StoreKey : IDisposable
{
    public const string EnvironmentVariable = "MESHGUARD_STORE_KEY";
    private const string Marker = "mgsealed1:";
    private const int NonceBytes = 12;
    private const int TagBytes = 16;
    private readonly AesGcm _aes;

    private StoreKey(byte[] key) => _aes = new AesGcm(key, TagBytes);

    /// <summary>From the file if one is named (it must be 0600), else from the environment variable.</summary>
    public static StoreKey Load(string? file)
    {
        string text;
        string source;
        if (file is not null)
        {
            SecureFile.RequireOwnerOnly(file);
            text = File.ReadAllText(file).Trim();
            source = file;
        }
        else
        {
            text = Environment.GetEnvironmentVariable(EnvironmentVariable)?.Trim()
                ?? throw new InvalidOperationException($"the etcd store needs the key that seals the CA's keys: set {EnvironmentVariable} (base64 of 32 random bytes) or --store-key-file");
            source = EnvironmentVariable;
        }
        return FromBase64(text, source);
    }

    public static StoreKey FromBase64(string text, string source)
    {
        byte[] key;
        try
        {
            key = Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            throw new InvalidOperationException($"{source} is not base64 (make one with: head -c 32 /dev/urandom | base64)");
        }
        return key.Length == 32
            ? new StoreKey(key)
            : throw new InvalidOperationException($"{source} holds {key.Length} bytes; the store key is 32 bytes (base64 of head -c 32 /dev/urandom)");
    }

    public static bool IsSealed(string value) => value.StartsWith(Marker, StringComparison.Ordinal);

    /// <summary>Seals <paramref name="plaintext"/> for the store key <paramref name="storeKey"/>.</summary>
    public string Seal(string plaintext, string storeKey)
    {
        var input = Encoding.UTF8.GetBytes(plaintext);
        var output = new byte[NonceBytes + input.Length + TagBytes];
        var nonce = output.AsSpan(0, NonceBytes);
        RandomNumberGenerator.Fill(nonce);
        _aes.Encrypt(nonce, input, output.AsSpan(NonceBytes, input.Length), output.AsSpan(NonceBytes + input.Length), Encoding.UTF8.GetBytes(storeKey));
        CryptographicOperations.ZeroMemory(input);
        return Marker + Convert.ToBase64String(output);
    }

    /// <summary>Opens a sealed value; a wrong key or a value moved from another store key is refused.</summary>
    public string Open(string sealedValue, string storeKey)
    {
        if (!IsSealed(sealedValue))
        {
            throw new InvalidOperationException($"{storeKey} is not sealed; the store holds no secret in the clear");
        }
        var bytes = Convert.FromBase64String(sealedValue[Marker.Length..]);
        if (bytes.Length < NonceBytes + TagBytes)
        {
            throw new InvalidOperationException($"{storeKey} is too short to be a sealed value");
        }
        var length = bytes.Length - NonceBytes - TagBytes;
        var plain = new byte[length];
        try
        {
            _aes.Decrypt(bytes.AsSpan(0, NonceBytes), bytes.AsSpan(NonceBytes, length), bytes.AsSpan(NonceBytes + length), plain, Encoding.UTF8.GetBytes(storeKey));
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new InvalidOperationException($"{storeKey} does not open with this store key (another {EnvironmentVariable}, or the value was altered)");
        }
        var text = Encoding.UTF8.GetString(plain);
        CryptographicOperations.ZeroMemory(plain);
        return text;
    }

    public void Dispose() => _aes.Dispose();
}
