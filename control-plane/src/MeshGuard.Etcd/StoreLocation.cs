namespace MeshGuard.Etcd;

/// <summary>
/// Where the control plane keeps its shared state: <c>etcd:http://10.0.0.1:2379,http://10.0.0.2:2379</c> (the
/// members of one etcd cluster). The file store of the data directory stays the default and has no location.
/// </summary>
public sealed record StoreLocation(IReadOnlyList<Uri> Endpoints)
{
    public const string Scheme = "etcd:";

    public override string ToString() => Scheme + string.Join(',', Endpoints.Select(static e => e.GetLeftPart(UriPartial.Authority)));

    /// <summary>Parses <c>etcd:URL[,URL...]</c>; null with an error that names what is wrong.</summary>
    public static StoreLocation? Parse(string text, out string? error)
    {
        error = null;
        if (!text.StartsWith(Scheme, StringComparison.Ordinal))
        {
            error = $"'{text}' must be etcd:URL[,URL...] (for example etcd:http://127.0.0.1:2379)";
            return null;
        }
        var endpoints = new List<Uri>();
        foreach (var part in text[Scheme.Length..].Split(',', StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(part, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.AbsolutePath != "/" || uri.Query.Length > 0)
            {
                error = $"'{part}' in '{text}' is not an etcd endpoint (http://host:port or https://host:port)";
                return null;
            }
            endpoints.Add(uri);
        }
        if (endpoints.Count is 0 or > 16)
        {
            error = $"'{text}' must name 1 to 16 etcd endpoints";
            return null;
        }
        return new StoreLocation(endpoints);
    }
}
