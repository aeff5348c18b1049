using System.Buffers;
using System.Buffers.Text;
using System.IO.Pipelines;
using System.Text;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>
/// Writes an HTTP/1.1 request head straight into a connection's <see cref="PipeWriter"/>: no intermediate
/// string or header collection. Values are written as ISO-8859-1 octets, the only form RFC 9110 lets a field
/// carry; a value that would need anything else, or holds a control character, is refused before a byte is
/// written (the caller answers 400), so no request can split into two on the app's side.
/// </summary>
internal static class Http1HeadWriter
{
    private static ReadOnlySpan<byte> Http11Crlf => " HTTP/1.1\r\n"u8;

    private static ReadOnlySpan<byte> ColonSpace => ": "u8;

    private static ReadOnlySpan<byte> Crlf => "\r\n"u8;

    /// <summary>RFC 9110 5.6.2 tchar: what a field name or a method may be made of; the answer parser reads names by it too.</summary>
    public const string TokenCharacters = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    private static readonly SearchValues<char> TokenChars = SearchValues.Create(TokenCharacters);

    // Space and visible ASCII: a usual value holds nothing else, and is cleared in one vectorized pass. (A generic range
    // check over chars boxed both bounds on every call in the JIT build: 4 % of the inbound sidecar's allocated bytes.)
    private static readonly SearchValues<char> PlainValueChars = SearchValues.Create(Enumerable.Range(' ', '~' - ' ' + 1).Select(static c => (char)c).ToArray());

    /// <summary>The request line: method, target (origin-form, already canonical) and version.</summary>
    public static void WriteRequestLine(PipeWriter writer, string method, string path, ReadOnlySpan<char> query)
    {
        var length = method.Length + 1 + path.Length + query.Length + Http11Crlf.Length;
        var span = writer.GetSpan(length);
        var at = Encoding.ASCII.GetBytes(method, span);
        span[at++] = (byte)' ';
        at += Encoding.ASCII.GetBytes(path, span[at..]);
        at += Encoding.ASCII.GetBytes(query, span[at..]);
        Http11Crlf.CopyTo(span[at..]);
        writer.Advance(length);
    }

    /// <summary>Whether <paramref name="name"/> may be written as a field name (an RFC 9110 token).</summary>
    public static bool IsToken(string name) => name.Length > 0 && !name.AsSpan().ContainsAnyExcept(TokenChars);

    /// <summary>Whether <paramref name="value"/> may be written as a field value: HTAB, visible ASCII, space and obs-text; no CR, LF or NUL.</summary>
    public static bool IsFieldValue(string value)
    {
        var span = value.AsSpan();
        if (!span.ContainsAnyExcept(PlainValueChars))
        {
            return true;
        }
        foreach (var c in span)
        {
            if (c > '\u00ff' || c == '\u007f' || (c < ' ' && c != '\t'))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>One field line. The caller checked name and value (<see cref="IsToken"/>, <see cref="IsFieldValue"/>).</summary>
    public static void WriteField(PipeWriter writer, string name, string value)
    {
        var length = name.Length + 2 + value.Length + 2;
        var span = writer.GetSpan(length);
        var at = Encoding.ASCII.GetBytes(name, span);
        ColonSpace.CopyTo(span[at..]);
        at += 2;
        at += Encoding.Latin1.GetBytes(value, span[at..]);
        Crlf.CopyTo(span[at..]);
        writer.Advance(length);
    }

    public static void WriteContentLength(PipeWriter writer, long length)
    {
        var span = writer.GetSpan(40);
        "Content-Length: "u8.CopyTo(span);
        Utf8Formatter.TryFormat(length, span[16..], out var digits);
        Crlf.CopyTo(span[(16 + digits)..]);
        writer.Advance(16 + digits + 2);
    }

    public static void WriteChunkedFraming(PipeWriter writer) => writer.Write("Transfer-Encoding: chunked\r\n"u8);

    /// <summary>The empty line that ends the head.</summary>
    public static void EndHead(PipeWriter writer) => writer.Write(Crlf);
}
