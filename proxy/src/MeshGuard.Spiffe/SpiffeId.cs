using System.Diagnostics.CodeAnalysis;

namespace MeshGuard.Spiffe;

/// <summary>
/// A SPIFFE ID, <c>spiffe://trust-domain/path</c>, validated as the SPIFFE ID spec says:
/// lower-case trust domain of [a-z0-9.-_], path segments of [a-zA-Z0-9.-_], no empty, "." or ".."
/// segment, no trailing slash, no query, fragment, port or userinfo, at most 2048 bytes.
/// </summary>
public sealed class SpiffeId : IEquatable<SpiffeId>
{
    public const string Scheme = "spiffe://";
    public const int MaxLength = 2048;

    private readonly string _value;

    private SpiffeId(string value, int pathStart)
    {
        _value = value;
        TrustDomain = value.Substring(Scheme.Length, pathStart - Scheme.Length);
        Path = value.Substring(pathStart);
    }

    /// <summary>The trust domain name, for example <c>mesh.local</c>.</summary>
    public string TrustDomain { get; }

    /// <summary>The path including its leading slash, or empty for a trust domain's own ID.</summary>
    public string Path { get; }

    /// <summary><c>spiffe://trust-domain</c>: the ID of the trust domain itself (used in CA certificates).</summary>
    public string TrustDomainId => Scheme + TrustDomain;

    public static SpiffeId Parse(string value)
    {
        if (!TryParse(value, out var id, out var error))
        {
            throw new FormatException($"invalid SPIFFE ID '{Truncate(value)}': {error}");
        }
        return id;
    }

    public static bool TryParse(string? value, [NotNullWhen(true)] out SpiffeId? id, [NotNullWhen(false)] out string? error)
    {
        id = null;
        error = Validate(value, out var pathStart);
        if (error is not null)
        {
            return false;
        }
        id = new SpiffeId(value!, pathStart);
        return true;
    }

    /// <summary>
    /// Whether this names a workload, not a trust domain: an X509-SVID must carry a path (SPIFFE X509-SVID 2), so every
    /// place an SVID can result from (a join token, a CSR's attested identity, a service-account mapping) requires one.
    /// </summary>
    public bool IsWorkload => Path.Length > 0;

    /// <summary>As <see cref="TryParse"/>, and the ID must name a workload (have a path).</summary>
    public static bool TryParseWorkload(string? value, [NotNullWhen(true)] out SpiffeId? id, [NotNullWhen(false)] out string? error)
    {
        if (!TryParse(value, out id, out error))
        {
            return false;
        }
        if (!id.IsWorkload)
        {
            id = null;
            error = "names a trust domain, not a workload: an SVID's ID needs a path (spiffe://<td>/ns/<ns>/sa/<sa>)";
            return false;
        }
        return true;
    }

    /// <summary>The last path segment (the service account of a workload ID), or the trust domain: a certificate's common name.</summary>
    public string CommonName => Path.Length == 0 ? TrustDomain : Path[(Path.LastIndexOf('/') + 1)..];

    /// <summary>Builds <c>spiffe://td/ns/NAMESPACE/sa/SERVICEACCOUNT</c>, the workload form MeshGuard uses.</summary>
    public static SpiffeId ForWorkload(string trustDomain, string ns, string serviceAccount) =>
        Parse($"{Scheme}{trustDomain}/ns/{ns}/sa/{serviceAccount}");

    /// <summary>Returns the segment after <paramref name="key"/> in the path (e.g. "ns" or "sa"), or null.</summary>
    public string? GetPathValue(string key)
    {
        var segments = Path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i + 1 < segments.Length; i += 2)
        {
            if (segments[i] == key)
            {
                return segments[i + 1];
            }
        }
        return null;
    }

    private static string? Validate(string? value, out int pathStart)
    {
        pathStart = 0;
        if (string.IsNullOrEmpty(value))
        {
            return "empty";
        }
        if (value.Length > MaxLength)
        {
            return $"longer than {MaxLength} bytes";
        }
        if (!value.StartsWith(Scheme, StringComparison.Ordinal))
        {
            return value.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase)
                ? "scheme must be lower-case 'spiffe'"
                : "scheme must be 'spiffe://'";
        }

        var i = Scheme.Length;
        var tdStart = i;
        for (; i < value.Length && value[i] != '/'; i++)
        {
            var c = value[i];
            if (!IsTrustDomainChar(c))
            {
                return c switch
                {
                    ':' => "trust domain must not contain a port",
                    '@' => "trust domain must not contain userinfo",
                    '?' => "must not contain a query",
                    '#' => "must not contain a fragment",
                    >= 'A' and <= 'Z' => "trust domain must be lower-case",
                    _ => $"trust domain contains an invalid character '{c}'",
                };
            }
        }
        if (i == tdStart)
        {
            return "trust domain is empty";
        }
        pathStart = i;

        // Path: "/" segment, repeated. Every segment non-empty and not "." or "..".
        while (i < value.Length)
        {
            // value[i] == '/'
            var segStart = ++i;
            for (; i < value.Length && value[i] != '/'; i++)
            {
                var c = value[i];
                if (!IsPathChar(c))
                {
                    return c switch
                    {
                        '?' => "must not contain a query",
                        '#' => "must not contain a fragment",
                        _ => $"path contains an invalid character '{c}'",
                    };
                }
            }
            var segLength = i - segStart;
            if (segLength == 0)
            {
                return i == value.Length ? "path must not end with '/'" : "path must not contain an empty segment";
            }
            if ((segLength == 1 && value[segStart] == '.') ||
                (segLength == 2 && value[segStart] == '.' && value[segStart + 1] == '.'))
            {
                return "path must not contain '.' or '..' segments";
            }
        }
        return null;
    }

    private static bool IsTrustDomainChar(char c) =>
        c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '-' or '_';

    private static bool IsPathChar(char c) =>
        c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '.' or '-' or '_';

    private static string Truncate(string? value) =>
        value is null ? "" : value.Length <= 80 ? value : value[..80] + "...";

    public bool Equals(SpiffeId? other) => other is not null && string.Equals(_value, other._value, StringComparison.Ordinal);

    public override bool Equals(object? obj) => obj is SpiffeId other && Equals(other);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(_value);

    public override string ToString() => _value;

    public static bool operator ==(SpiffeId? left, SpiffeId? right) => left is null ? right is null : left.Equals(right);

    public static bool operator !=(SpiffeId? left, SpiffeId? right) => !(left == right);
}
