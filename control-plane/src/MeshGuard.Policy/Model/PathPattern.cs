namespace MeshGuard.Policy.Model;

/// <summary>A path pattern: exact <c>/a</c>, prefix <c>/a/*</c> (anything below /a/, not /a itself), or <c>*</c> (any path).</summary>
public sealed record PathPattern
{
    private PathPattern(string text, PathPatternKind kind, string value)
    {
        Text = text;
        Kind = kind;
        Value = value;
    }

    public string Text { get; }

    public PathPatternKind Kind { get; }

    /// <summary>The exact path, or the prefix including its trailing slash.</summary>
    public string Value { get; }

    public static bool TryParse(string text, out PathPattern? pattern, out string? error)
    {
        pattern = null;
        if (text == "*")
        {
            pattern = new PathPattern(text, PathPatternKind.Any, "");
            error = null;
            return true;
        }
        if (text.Length == 0 || text[0] != '/')
        {
            error = $"path pattern '{text}' must start with '/' or be '*'";
            return false;
        }
        var star = text.IndexOf('*', StringComparison.Ordinal);
        if (star >= 0 && !(star == text.Length - 1 && text.EndsWith("/*", StringComparison.Ordinal)))
        {
            error = $"path pattern '{text}' may use '*' only as a whole last segment ('/a/*')";
            return false;
        }
        foreach (var c in text)
        {
            if (c is '?' or '#' || char.IsWhiteSpace(c) || char.IsControl(c))
            {
                error = $"path pattern '{text}' must not contain a query, fragment or whitespace";
                return false;
            }
        }
        pattern = star >= 0
            ? new PathPattern(text, PathPatternKind.Prefix, text[..^1])
            : new PathPattern(text, PathPatternKind.Exact, text);
        error = null;
        return true;
    }

    public bool Matches(ReadOnlySpan<char> path) => Kind switch
    {
        PathPatternKind.Any => true,
        PathPatternKind.Exact => path.SequenceEqual(Value),
        _ => path.Length > Value.Length && path.StartsWith(Value, StringComparison.Ordinal),
    };
}

public enum PathPatternKind
{
    Exact,
    Prefix,
    Any,
}
