using System.Text;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// The strings a connection's decoder hands out for fields that arrive as literals (RFC 7541 6.2), made once where
/// the octets repeat. A literal name that is a known field name (the static table's and the fields the mesh carries:
/// ids, trace context, gRPC's, forwarding) is that name's one interned string; a literal value equal to the last one
/// this connection decoded for the same name (a path, a content type a peer does not index) is that string again.
/// The peer's octets decide: a string is reused only when they are the same, so what the handler sees is exactly what
/// was sent. Measured with the bench's requests on the inbound sidecar: the literal names and path were some 130 of
/// the 500 bytes it allocated per request.
/// </summary>
internal sealed class HpackFieldStrings
{
    // The fields a peer commonly sends as literals: beyond the static table's names, those whose values differ per
    // request (ids, trace context, deadlines), which an encoder keeps out of its dynamic table, names and all.
    private static readonly string[] ExtraNames =
    [
        "x-request-id", "traceparent", "tracestate", "baggage", "grpc-timeout", "grpc-status", "grpc-message", "grpc-encoding",
        "grpc-accept-encoding", "te", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip",
        "x-forwarded-client-cert", "x-meshguard-orig-proto", ":protocol",
    ];

    // Known names by length, each beside its octets: a lookup compares only names of the literal's length.
    private static readonly (byte[] Octets, string Name)[][] KnownByLength = BuildKnown();

    private const int Slots = 8;
    private readonly string?[] _names = new string?[Slots];
    private readonly string?[] _values = new string?[Slots];
    private int _next;

    /// <summary>The name for a literal's octets (already checked to be a lower-case token).</summary>
    public static string Name(ReadOnlySpan<byte> octets) => TryKnownName(octets, out var name) ? name : Encoding.Latin1.GetString(octets);

    /// <summary>The one interned string of a known field name given in lower case, if it is one.</summary>
    public static bool TryKnownName(ReadOnlySpan<byte> octets, out string name)
    {
        if (octets.Length < KnownByLength.Length)
        {
            foreach (var (known, text) in KnownByLength[octets.Length])
            {
                if (octets.SequenceEqual(known))
                {
                    name = text;
                    return true;
                }
            }
        }
        name = "";
        return false;
    }

    /// <summary>The value for a literal's octets (already checked) of field <paramref name="name"/>.</summary>
    public string Value(string name, ReadOnlySpan<byte> octets)
    {
        if (octets.IsEmpty)
        {
            return "";
        }
        var slot = Array.IndexOf(_names, name);
        if (slot >= 0 && _values[slot] is { } last && Same(last, octets))
        {
            return last;
        }
        var value = Encoding.Latin1.GetString(octets);
        if (slot < 0)
        {
            slot = _next;
            _next = (_next + 1) % Slots;
            _names[slot] = name;
        }
        _values[slot] = value;
        return value;
    }

    private static bool Same(string text, ReadOnlySpan<byte> octets)
    {
        if (text.Length != octets.Length)
        {
            return false;
        }
        for (var i = 0; i < octets.Length; i++)
        {
            if (text[i] != octets[i])
            {
                return false;
            }
        }
        return true;
    }

    private static (byte[] Octets, string Name)[][] BuildKnown()
    {
        var names = HpackStaticTable.Entries.Select(e => e.Name).Concat(ExtraNames).Distinct(StringComparer.Ordinal).ToArray();
        var byLength = new (byte[] Octets, string Name)[names.Max(n => n.Length) + 1][];
        for (var length = 0; length < byLength.Length; length++)
        {
            byLength[length] = [.. names.Where(n => n.Length == length).Select(n => (Encoding.ASCII.GetBytes(n), n))];
        }
        return byLength;
    }
}
