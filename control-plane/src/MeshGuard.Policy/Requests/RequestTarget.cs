using System.Buffers;

namespace MeshGuard.Policy.Requests;

/// <summary>
/// A request target made canonical: the path policy decides on and the app receives, and the query passed as it
/// came. Only origin-form is taken (<c>/path?query</c>): sidecars send nothing else between them.
/// </summary>
public readonly struct RequestTarget
{
    private readonly string _raw;
    private readonly int _queryStart;

    private RequestTarget(string path, string raw, int queryStart)
    {
        Path = path;
        _raw = raw;
        _queryStart = queryStart;
    }

    /// <summary>The canonical path: what policy matches and what the app is sent.</summary>
    public string Path { get; }

    /// <summary>The query with its <c>?</c>, as the caller sent it (validated, not rewritten); empty if none.</summary>
    public ReadOnlySpan<char> Query => _raw is null ? default : _raw.AsSpan(_queryStart);

    /// <summary>Longest target taken: Kestrel's own request-line limit.</summary>
    public const int MaxLength = 8 * 1024;

    /// <summary>
    /// Makes <paramref name="raw"/> canonical by <paramref name="rules"/>, in this order: 1. origin-form, every
    /// character one RFC 3986 allows; 2. percent-escapes decoded where they stand for an unreserved character,
    /// upper-cased where kept, encoded slashes and <c>;</c> parameters as the rules say; 3. slashes merged;
    /// 4. dot segments removed (RFC 3986 5.2.4). A target already canonical costs no allocation when it has no
    /// query, or when <paramref name="knownPath"/> (the server's own reading) equals its path.
    /// </summary>
    public static TargetVerdict TryParse(string raw, PathNormalization rules, out RequestTarget target, string? knownPath = null)
    {
        target = default;
        if (raw.Length == 0 || raw[0] != '/')
        {
            return TargetVerdict.NotOriginForm;
        }
        if (raw.Length > MaxLength)
        {
            return TargetVerdict.TooLong;
        }
        var queryStart = raw.IndexOf('?', StringComparison.Ordinal);
        if (queryStart < 0)
        {
            queryStart = raw.Length;
        }
        else if (!IsValidQuery(raw.AsSpan(queryStart + 1)))
        {
            return TargetVerdict.InvalidCharacter;
        }
        var rawPath = raw.AsSpan(0, queryStart);
        var scan = Scan(rawPath, rules);
        if (scan != TargetVerdict.Canonical)
        {
            if (scan != NeedsWork)
            {
                return scan;
            }
            var buffer = ArrayPool<char>.Shared.Rent(rawPath.Length + 1);
            try
            {
                var verdict = Normalize(rawPath, rules, buffer, out var length);
                if (verdict != TargetVerdict.Canonical)
                {
                    return verdict;
                }
                var normalized = buffer.AsSpan(0, length);
                target = new RequestTarget(knownPath is not null && normalized.SequenceEqual(knownPath) ? knownPath : normalized.ToString(), raw, queryStart);
                return TargetVerdict.Canonical;
            }
            finally
            {
                ArrayPool<char>.Shared.Return(buffer);
            }
        }
        var path = queryStart == raw.Length ? raw
            : knownPath is not null && rawPath.SequenceEqual(knownPath) ? knownPath
            : raw[..queryStart];
        target = new RequestTarget(path, raw, queryStart);
        return TargetVerdict.Canonical;
    }

    // Internal to Scan: the path is valid but not canonical as it stands.
    private const TargetVerdict NeedsWork = (TargetVerdict)(-1);

    /// <summary>Validates every character and says whether any rewriting is due.</summary>
    private static TargetVerdict Scan(ReadOnlySpan<char> path, PathNormalization rules)
    {
        var work = false;
        for (var i = 0; i < path.Length; i++)
        {
            var c = path[i];
            if (c == '%')
            {
                work = true;
            }
            else if (c == ';')
            {
                if (rules.PathParameters == PathParameters.Reject)
                {
                    return TargetVerdict.PathParameter;
                }
                work |= rules.PathParameters == PathParameters.Strip;
            }
            else if (c == '/')
            {
                // "//" to merge, or a segment that starts with '.' (perhaps "." or ".."): let the full pass decide.
                work |= i + 1 < path.Length && ((path[i + 1] == '/' && rules.MergeSlashes) || path[i + 1] == '.');
            }
            else if (!IsPathChar(c))
            {
                return TargetVerdict.InvalidCharacter;
            }
        }
        return work ? NeedsWork : TargetVerdict.Canonical;
    }

    private static TargetVerdict Normalize(ReadOnlySpan<char> path, PathNormalization rules, char[] output, out int length)
    {
        length = 0;
        // 2. Decode into the output buffer: the decoded path is never longer than the raw one.
        var decoded = output.AsSpan();
        var n = 0;
        for (var i = 0; i < path.Length; i++)
        {
            var c = path[i];
            if (c == ';' && rules.PathParameters == PathParameters.Strip)
            {
                while (i + 1 < path.Length && path[i + 1] != '/')
                {
                    i++;
                }
                continue;
            }
            if (c != '%')
            {
                decoded[n++] = c;
                continue;
            }
            if (i + 2 >= path.Length || !char.IsAsciiHexDigit(path[i + 1]) || !char.IsAsciiHexDigit(path[i + 2]))
            {
                return TargetVerdict.InvalidEscape;
            }
            var value = (char)((HexValue(path[i + 1]) << 4) | HexValue(path[i + 2]));
            i += 2;
            if (IsUnreserved(value))
            {
                decoded[n++] = value;
            }
            else if (value is '/' or '\\')
            {
                switch (rules.EscapedSlashes)
                {
                    case EscapedSlashes.Reject:
                        return TargetVerdict.EscapedSlash;
                    case EscapedSlashes.Decode:
                        decoded[n++] = '/';
                        break;
                    default:
                        decoded[n++] = '%';
                        decoded[n++] = value == '/' ? '2' : '5';
                        decoded[n++] = value == '/' ? 'F' : 'C';
                        break;
                }
            }
            else
            {
                decoded[n++] = '%';
                decoded[n++] = char.ToUpperInvariant(path[i - 1]);
                decoded[n++] = char.ToUpperInvariant(path[i]);
            }
        }

        // 3 and 4, in place: the output never overtakes the input. Segments are written as "/name"; a segment that
        // ends the path as ".", ".." or "" leaves a trailing slash (RFC 3986: /a/b/.. is /a/).
        var write = 0;
        var read = 1; // decoded[0] is '/': the raw path started with it and nothing above rewrites the first character
        var trailingSlash = false;
        while (read <= n)
        {
            var end = decoded[..n][read..].IndexOf('/');
            end = end < 0 ? n : read + end;
            var segment = decoded[read..end];
            var last = end >= n;
            trailingSlash = false;
            if (segment is ['.'])
            {
                trailingSlash = last;
            }
            else if (segment is ['.', '.'])
            {
                write = write == 0 ? 0 : decoded[..write].LastIndexOf('/');
                trailingSlash = last;
            }
            else if (segment.IsEmpty && (last || rules.MergeSlashes))
            {
                trailingSlash = last;
            }
            else
            {
                decoded[write++] = '/';
                segment.CopyTo(decoded[write..]);
                write += segment.Length;
            }
            read = end + 1;
        }
        if (write == 0 || trailingSlash)
        {
            decoded[write++] = '/';
        }
        length = write;
        return TargetVerdict.Canonical;
    }

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    /// <summary>RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~".</summary>
    private static bool IsUnreserved(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '~';

    /// <summary>RFC 3986 pchar other than pct-encoded (handled apart): unreserved / sub-delims / ":" / "@".</summary>
    private static bool IsPathChar(char c) =>
        IsUnreserved(c) || c is '!' or '$' or '&' or '\'' or '(' or ')' or '*' or '+' or ',' or ';' or '=' or ':' or '@';

    private static bool IsValidQuery(ReadOnlySpan<char> query)
    {
        for (var i = 0; i < query.Length; i++)
        {
            var c = query[i];
            if (c == '%')
            {
                if (i + 2 >= query.Length || !char.IsAsciiHexDigit(query[i + 1]) || !char.IsAsciiHexDigit(query[i + 2]))
                {
                    return false;
                }
                i += 2;
            }
            else if (!IsPathChar(c) && c is not '/' and not '?')
            {
                return false;
            }
        }
        return true;
    }
}

public enum TargetVerdict
{
    Canonical,

    /// <summary>Absolute-form, authority-form, asterisk-form, or empty.</summary>
    NotOriginForm,

    /// <summary>A character RFC 3986 does not allow there (space, <c>\</c>, <c>#</c>, a control or non-ASCII character).</summary>
    InvalidCharacter,

    /// <summary>A <c>%</c> not followed by two hex digits.</summary>
    InvalidEscape,

    /// <summary><c>%2F</c> or <c>%5C</c> while the rules refuse them.</summary>
    EscapedSlash,

    /// <summary>A <c>;</c> while the rules refuse path parameters.</summary>
    PathParameter,

    TooLong,
}
