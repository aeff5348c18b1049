namespace MeshGuard.Policy.Requests;

/// <summary>
/// A request method as policy compares it: an RFC 9110 token, case-sensitive as the standard says. A standard
/// method spelled in another case (<c>delete</c>, <c>Get</c>) is refused rather than matched loosely: some
/// servers and clients upper-case it on the way, and the app would then get a method no rule was asked about.
/// </summary>
public static class RequestMethod
{
    /// <summary>Longer than any method in use; bounds what a caller can make the sidecar hold and log.</summary>
    public const int MaxLength = 32;

    /// <summary>The methods policies may name (RFC 9110 and PATCH, RFC 5789).</summary>
    public static IReadOnlySet<string> Standard { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    };

    public static MethodVerdict Check(ReadOnlySpan<char> method)
    {
        if (method.IsEmpty || method.Length > MaxLength)
        {
            return MethodVerdict.NotAToken;
        }
        var lower = false;
        foreach (var c in method)
        {
            if (!IsTokenChar(c))
            {
                return MethodVerdict.NotAToken;
            }
            lower |= c is >= 'a' and <= 'z';
        }
        // Only a method with a lower-case letter can be a standard one in another case.
        return lower && IsStandardIgnoringCase(method) ? MethodVerdict.NonCanonicalCase : MethodVerdict.Valid;
    }

    /// <summary>RFC 9110 5.6.2 tchar.</summary>
    public static bool IsTokenChar(char c) => c switch
    {
        >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' => true,
        '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~' => true,
        _ => false,
    };

    private static bool IsStandardIgnoringCase(ReadOnlySpan<char> method)
    {
        foreach (var standard in (HashSet<string>)Standard)
        {
            if (method.Equals(standard, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        return false;
    }
}

public enum MethodVerdict
{
    Valid,

    /// <summary>Empty, too long, or a character outside RFC 9110's tchar.</summary>
    NotAToken,

    /// <summary>A standard method in another case than its own (upper).</summary>
    NonCanonicalCase,
}
