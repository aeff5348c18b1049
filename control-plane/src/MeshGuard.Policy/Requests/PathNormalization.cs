namespace MeshGuard.Policy.Requests;

/// <summary>
/// The stated rules by which a request's path is made canonical before policy sees it (and before the app does):
/// percent-encoded unreserved characters are decoded, RFC 3986 dot segments removed, and these three choices made.
/// The defaults refuse what apps are known to read differently from the mesh; see README, "Path normalization".
/// </summary>
public sealed record PathNormalization
{
    /// <summary>Refuse encoded slashes, merge slashes, refuse <c>;</c> parameters.</summary>
    public static PathNormalization Default { get; } = new();

    /// <summary>What to do with <c>%2F</c> and <c>%5C</c> (encoded <c>/</c> and <c>\</c>).</summary>
    public EscapedSlashes EscapedSlashes { get; init; } = EscapedSlashes.Reject;

    /// <summary>Whether runs of <c>/</c> become one (<c>//a///b</c> is <c>/a/b</c>).</summary>
    public bool MergeSlashes { get; init; } = true;

    /// <summary>What to do with <c>;</c> path parameters (<c>/a;v=1/b</c>).</summary>
    public PathParameters PathParameters { get; init; } = PathParameters.Reject;

    /// <summary>Reads the rule set from its text form, <c>escaped-slashes=reject,merge-slashes=true,path-parameters=reject</c>.</summary>
    public static bool TryParse(string text, out PathNormalization rules, out string? error)
    {
        rules = Default;
        error = null;
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var equals = part.IndexOf('=', StringComparison.Ordinal);
            var (name, value) = equals < 0 ? (part, "") : (part[..equals], part[(equals + 1)..]);
            switch (name, value)
            {
                case ("escaped-slashes", "reject"): rules = rules with { EscapedSlashes = EscapedSlashes.Reject }; break;
                case ("escaped-slashes", "keep"): rules = rules with { EscapedSlashes = EscapedSlashes.Keep }; break;
                case ("escaped-slashes", "decode"): rules = rules with { EscapedSlashes = EscapedSlashes.Decode }; break;
                case ("merge-slashes", "true"): rules = rules with { MergeSlashes = true }; break;
                case ("merge-slashes", "false"): rules = rules with { MergeSlashes = false }; break;
                case ("path-parameters", "reject"): rules = rules with { PathParameters = PathParameters.Reject }; break;
                case ("path-parameters", "keep"): rules = rules with { PathParameters = PathParameters.Keep }; break;
                case ("path-parameters", "strip"): rules = rules with { PathParameters = PathParameters.Strip }; break;
                default:
                    error = $"'{part}': expected escaped-slashes=reject|keep|decode, merge-slashes=true|false or path-parameters=reject|keep|strip";
                    return false;
            }
        }
        return true;
    }

    public override string ToString() =>
        $"escaped-slashes={EscapedSlashes.ToString().ToLowerInvariant()},merge-slashes={(MergeSlashes ? "true" : "false")},path-parameters={PathParameters.ToString().ToLowerInvariant()}";
}

/// <summary>Encoded <c>/</c> and <c>\</c>, as Envoy's <c>path_with_escaped_slashes_action</c>.</summary>
public enum EscapedSlashes
{
    /// <summary>400: an app that decodes them would see other segments than policy did.</summary>
    Reject,

    /// <summary>Left encoded: policy and app both see <c>%2F</c> (upper-cased hex).</summary>
    Keep,

    /// <summary>Decoded before dot segments are removed: <c>%2F</c> becomes a segment separator, <c>%5C</c> too.</summary>
    Decode,
}

/// <summary><c>;</c> path parameters, which servlet containers strip before routing (<c>/a/..;/admin</c>).</summary>
public enum PathParameters
{
    /// <summary>400: a path with <c>;</c> is refused.</summary>
    Reject,

    /// <summary>Part of the segment: policy and app see <c>/a;v=1</c>.</summary>
    Keep,

    /// <summary>Removed from every segment before dot segments are removed; neither policy nor app sees them.</summary>
    Strip,
}
