using System.Buffers;
using System.Text;
using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>
/// RFC 9110 section 7.6.1: a field that <c>Connection</c> names is hop-by-hop and stops at the first proxy. Each
/// HTTP/1.1 server of the sidecar drops what a request names before any handler sees it (policy decides on what
/// the app will receive): the own server as it reads the head, Kestrel's through <see cref="Http1HandOver"/>. The
/// legs drop what an app's answer names. <c>Upgrade</c> is left to the forwarder, which carries WebSocket upgrades;
/// close and keep-alive name no field.
/// </summary>
internal static class HopByHopFields
{
    /// <summary>Removes from <paramref name="headers"/> every field that <paramref name="connection"/> names.</summary>
    public static void RemoveNamed(IHeaderDictionary headers, StringValues connection)
    {
        foreach (var value in connection)
        {
            var rest = (value ?? "").AsSpan();
            while (!rest.IsEmpty)
            {
                var comma = rest.IndexOf(',');
                var token = (comma < 0 ? rest : rest[..comma]).Trim(" \t");
                rest = comma < 0 ? default : rest[(comma + 1)..];
                if (NamesAField(token))
                {
                    // Names are few and short; the string is made only for an option actually sent.
                    headers.Remove(token.ToString());
                }
            }
        }
    }

    /// <summary>Whether a Connection option names a field (anything but close, keep-alive and upgrade).</summary>
    public static bool NamesAField(ReadOnlySpan<char> token) =>
        !token.IsEmpty && !token.Equals("close", StringComparison.OrdinalIgnoreCase) && !token.Equals("keep-alive", StringComparison.OrdinalIgnoreCase)
        && !token.Equals("upgrade", StringComparison.OrdinalIgnoreCase);

    /// <summary>Whether a Connection option names a field (anything but close, keep-alive and upgrade).</summary>
    public static bool NamesAField(ReadOnlySpan<byte> token) =>
        !token.IsEmpty && !Ascii.EqualsIgnoreCase(token, "close"u8) && !Ascii.EqualsIgnoreCase(token, "keep-alive"u8) && !Ascii.EqualsIgnoreCase(token, "upgrade"u8);

    /// <summary>
    /// The Connection values of a head as any lenient reader would take them (lines split at LF, a CR before it
    /// dropped): for a request the own server leaves to Kestrel, whose collection keeps only the one option it knows
    /// of a value like <c>x-hop, close</c>. Null when the head does not end within <paramref name="head"/> yet;
    /// empty when it names no field.
    /// </summary>
    public static string? ScanNamed(ReadOnlySequence<byte> head, int maxBytes)
    {
        // Line by line where the octets lie: a head that arrives a little at a time is scanned at each read, and a
        // copy of all of it each time would cost its square.
        var reader = new SequenceReader<byte>(head.Length > maxBytes ? head.Slice(0, maxBytes) : head);
        StringBuilder? named = null;
        var first = true;
        while (reader.TryReadTo(out ReadOnlySequence<byte> octets, (byte)'\n'))
        {
            var line = octets.IsSingleSegment ? octets.FirstSpan : octets.ToArray();
            if (!line.IsEmpty && line[^1] == (byte)'\r')
            {
                line = line[..^1];
            }
            if (line.IsEmpty && !first)
            {
                return named?.ToString() ?? "";
            }
            first = false;
            if (line.Length > 11 && Ascii.EqualsIgnoreCase(line[..11], "connection:"u8))
            {
                var value = line[11..];
                foreach (var range in value.Split((byte)','))
                {
                    var token = value[range].Trim(" \t"u8);
                    if (NamesAField(token))
                    {
                        (named ??= new()).Append(named.Length > 0 ? ", " : "").Append(Encoding.Latin1.GetString(token));
                    }
                }
            }
        }
        return head.Length > maxBytes ? "" : null;
    }
}
