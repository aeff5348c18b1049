using System.Collections.Frozen;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>The 61 entries of HPACK's static table (RFC 7541 Appendix A), index 1 first.</summary>
internal static class HpackStaticTable
{
    public const int Count = 61;

    /// <summary>Entry i is at [i - 1]; the strings are interned, so a decoded static field costs nothing.</summary>
    public static readonly (string Name, string Value)[] Entries =
    [
        (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
        (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
        (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
        ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""), ("cache-control", ""),
        ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
        ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""), ("date", ""),
        ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""), ("if-match", ""),
        ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""), ("if-unmodified-since", ""),
        ("last-modified", ""), ("link", ""), ("location", ""), ("max-forwards", ""), ("proxy-authenticate", ""),
        ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""),
        ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
        ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
    ];

    // Looked up for every field a sidecar encodes: a frozen table hashes a name in fewer steps than a dictionary that
    // folds the case of every character first.
    private static readonly FrozenDictionary<string, int> FirstIndexByName = Build();

    /// <summary>The first static index whose name is <paramref name="name"/> (any case), or 0.</summary>
    public static int IndexOfName(string name) => FirstIndexByName.GetValueOrDefault(name);

    /// <summary>The static index holding exactly this name and value, or 0 (only the few entries with values are searched).</summary>
    public static int IndexOf(int nameIndex, string value)
    {
        if (nameIndex == 0)
        {
            return 0;
        }
        for (var i = nameIndex; i <= Count && ReferenceEquals(Entries[i - 1].Name, Entries[nameIndex - 1].Name); i++)
        {
            if (Entries[i - 1].Value.Length != 0 && string.Equals(Entries[i - 1].Value, value, StringComparison.Ordinal))
            {
                return i;
            }
        }
        return 0;
    }

    private static FrozenDictionary<string, int> Build()
    {
        var byName = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < Entries.Length; i++)
        {
            byName.TryAdd(Entries[i].Name, i + 1);
        }
        return byName.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
    }
}
