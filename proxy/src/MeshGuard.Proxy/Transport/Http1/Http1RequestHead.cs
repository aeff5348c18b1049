using System.Buffers;
using System.Text;
using MeshGuard.Proxy.Transport.Http2;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>What the own HTTP/1.1 server makes of the bytes at the start of a request.</summary>
internal enum RequestHeadStatus
{
    /// <summary>The head is not whole yet.</summary>
    NeedMore,
    /// <summary>A plain request: the head was read, and the server serves it.</summary>
    Plain,
    /// <summary>
    /// Anything else: the server leaves the bytes unread and the connection to Kestrel's HTTP/1.1 server, which
    /// serves what needs general forwarding (an upgrade, 100-continue, CONNECT, HTTP/1.0) and answers what is
    /// malformed or too large (400, 414, 431) as it always did.
    /// </summary>
    NotPlain,
}

/// <summary>
/// The head of a request to the own HTTP/1.1 server, read by a parser that accepts only a strict subset of what
/// Kestrel's parser accepts: CRLF line ends, <c>METHOD SP origin-form SP HTTP/1.1</c> (or absolute-form
/// <c>http://authority/path</c> with the Host field equal to its authority, as an app sends through HTTP_PROXY),
/// field names that are tokens
/// followed at once by a colon, values of visible ASCII, space and tab, one Host, at most one Content-Length of
/// digits or one <c>Transfer-Encoding: chunked</c> (never both), and no field that asks for more than request and
/// answer (Upgrade, Expect, HTTP2-Settings). Whatever falls outside is <see cref="RequestHeadStatus.NotPlain"/>, so
/// two readers never frame one request differently: a request either meets this parser's rules or is Kestrel's.
/// The fields go into the server's collection as sent, Connection included; the server drops the fields a caller
/// names there (<see cref="HopByHopFields"/>).
/// </summary>
internal struct Http1RequestHead
{
    /// <summary>Kestrel's limits (<see cref="RequestFieldBounds"/>): a longer request line or head is left to it (414, 431).</summary>
    public const int MaxRequestLine = 8 * 1024;
    public const int MaxHeadBytes = RequestFieldBounds.MaxSectionBytes;
    public const int MaxFields = RequestFieldBounds.MaxFields;

    public string Method;
    public string RawTarget;
    /// <summary>Where the query begins in <see cref="RawTarget"/>, or -1.</summary>
    public int QueryAt;
    /// <summary>Where the path begins in <see cref="RawTarget"/>: 0 in origin-form, after the authority in absolute-form.</summary>
    public int PathAt;
    public long? ContentLength;
    public bool Chunked;
    /// <summary>The caller said <c>Connection: close</c>.</summary>
    public bool Close;
    /// <summary>The caller's Connection header names fields: hop-by-hop, dropped before a handler sees the request.</summary>
    public bool NamesFields;

    private static ReadOnlySpan<byte> EndOfHead => "\r\n\r\n"u8;

    private static readonly SearchValues<byte> TokenBytes = SearchValues.Create(Encoding.ASCII.GetBytes(Http1HeadWriter.TokenCharacters));

    // What a target, a value and a host may hold here; anything else is Kestrel's to judge.
    private static readonly SearchValues<byte> TargetBytes = SearchValues.Create([.. Enumerable.Range(0x21, 0x7e - 0x21 + 1).Where(b => b != '#').Select(b => (byte)b)]);
    private static readonly SearchValues<byte> ValueBytes = SearchValues.Create([(byte)'\t', .. Enumerable.Range(0x20, 0x7e - 0x20 + 1).Select(b => (byte)b)]);
    private static readonly SearchValues<byte> HostBytes = SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_~:[]"u8);

    /// <summary>
    /// Reads a head from <paramref name="buffer"/>, which starts at a request. On <see cref="RequestHeadStatus.Plain"/>
    /// the fields are in <paramref name="fields"/> and <paramref name="end"/> is where the body begins; otherwise
    /// <paramref name="fields"/> is left empty.
    /// </summary>
    public static RequestHeadStatus TryParse(in ReadOnlySequence<byte> buffer, FieldList fields, HpackFieldStrings strings, string? lastTarget, out Http1RequestHead head, out SequencePosition end)
    {
        head = default;
        end = buffer.Start;
        ReadOnlySpan<byte> block;
        byte[]? rented = null;
        if (buffer.IsSingleSegment || buffer.FirstSpan.Length >= MaxHeadBytes + EndOfHead.Length)
        {
            var first = buffer.FirstSpan;
            var at = first.IndexOf(EndOfHead);
            if (at < 0)
            {
                return Undecided(first, buffer.IsSingleSegment ? buffer.Length : long.MaxValue);
            }
            block = first[..(at + 2)];
            end = buffer.GetPosition(at + EndOfHead.Length);
        }
        else
        {
            var reader = new SequenceReader<byte>(buffer);
            if (!reader.TryReadTo(out ReadOnlySequence<byte> sequence, EndOfHead, advancePastDelimiter: true))
            {
                return buffer.Length > MaxHeadBytes ? RequestHeadStatus.NotPlain : RequestHeadStatus.NeedMore;
            }
            if (sequence.Length + EndOfHead.Length > MaxHeadBytes)
            {
                return RequestHeadStatus.NotPlain;
            }
            rented = ArrayPool<byte>.Shared.Rent((int)sequence.Length + 2);
            sequence.CopyTo(rented);
            rented[(int)sequence.Length] = (byte)'\r';
            rented[(int)sequence.Length + 1] = (byte)'\n';
            block = rented.AsSpan(0, (int)sequence.Length + 2);
            end = reader.Position;
        }
        try
        {
            if (block.Length + 2 > MaxHeadBytes || !Parse(block, fields, strings, lastTarget, ref head))
            {
                fields.Clear();
                return RequestHeadStatus.NotPlain;
            }
            return RequestHeadStatus.Plain;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>No end of head yet: more may come, unless what is there already is not a plain head's start.</summary>
    private static RequestHeadStatus Undecided(ReadOnlySpan<byte> bytes, long length)
    {
        if (length > MaxHeadBytes)
        {
            return RequestHeadStatus.NotPlain;
        }
        // A bare LF (or CR) would end a line for some readers and not for others: Kestrel's to judge, now rather than
        // after the headers timeout.
        var at = bytes.IndexOfAny((byte)'\r', (byte)'\n');
        while (at >= 0 && at + 1 < bytes.Length)
        {
            if (bytes[at] == (byte)'\n' || bytes[at + 1] != (byte)'\n')
            {
                return RequestHeadStatus.NotPlain;
            }
            var next = bytes[(at + 2)..].IndexOfAny((byte)'\r', (byte)'\n');
            at = next < 0 ? -1 : at + 2 + next;
        }
        if (at >= 0 && bytes[at] == (byte)'\n')
        {
            return RequestHeadStatus.NotPlain;
        }
        return RequestHeadStatus.NeedMore;
    }

    /// <summary>The head, each line ending in CRLF, without the final empty line. False: not plain.</summary>
    private static bool Parse(ReadOnlySpan<byte> block, FieldList fields, HpackFieldStrings strings, string? lastTarget, ref Http1RequestHead head)
    {
        var lineEnd = block.IndexOf("\r\n"u8);
        if (lineEnd > MaxRequestLine || !ParseRequestLine(block[..lineEnd], lastTarget, ref head))
        {
            return false;
        }
        var rest = block[(lineEnd + 2)..];
        var count = 0;
        var hosts = 0;
        Span<byte> lower = stackalloc byte[64];
        while (!rest.IsEmpty)
        {
            lineEnd = rest.IndexOf("\r\n"u8);
            var line = rest[..lineEnd];
            rest = rest[(lineEnd + 2)..];
            var colon = line.IndexOf((byte)':');
            // A token, then the colon at once: no obs-fold, no space before the colon, no bare CR inside.
            if (colon <= 0 || line[..colon].ContainsAnyExcept(TokenBytes) || ++count > MaxFields)
            {
                return false;
            }
            var name = line[..colon];
            var value = line[(colon + 1)..].Trim(" \t"u8);
            if (value.ContainsAnyExcept(ValueBytes))
            {
                return false;
            }
            switch (name.Length)
            {
                case 4 when Ascii.EqualsIgnoreCase(name, "Host"u8):
                    if (++hosts > 1 || value.IsEmpty || value.ContainsAnyExcept(HostBytes))
                    {
                        return false;
                    }
                    break;
                case 14 when Ascii.EqualsIgnoreCase(name, "Content-Length"u8):
                    if (head.ContentLength is not null || head.Chunked || value.IsEmpty || value.Length > 18 || value.ContainsAnyExceptInRange((byte)'0', (byte)'9'))
                    {
                        return false;
                    }
                    head.ContentLength = long.Parse(value, provider: System.Globalization.CultureInfo.InvariantCulture);
                    break;
                case 17 when Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8):
                    if (head.Chunked || head.ContentLength is not null || !Ascii.EqualsIgnoreCase(value, "chunked"u8))
                    {
                        return false;
                    }
                    head.Chunked = true;
                    break;
                case 10 when Ascii.EqualsIgnoreCase(name, "Connection"u8):
                    foreach (var range in value.Split((byte)','))
                    {
                        var token = value[range].Trim(" \t"u8);
                        if (Ascii.EqualsIgnoreCase(token, "upgrade"u8))
                        {
                            return false;
                        }
                        head.Close |= Ascii.EqualsIgnoreCase(token, "close"u8);
                        head.NamesFields |= HopByHopFields.NamesAField(token);
                    }
                    break;
                case 7 when Ascii.EqualsIgnoreCase(name, "Upgrade"u8):
                case 6 when Ascii.EqualsIgnoreCase(name, "Expect"u8):
                case 14 when Ascii.EqualsIgnoreCase(name, "HTTP2-Settings"u8):
                    return false;
            }
            // Names the mesh knows are its one lower-case string each; any other keeps the caller's spelling.
            var nameText = name.Length <= lower.Length && Ascii.ToLower(name, lower, out var folded) == OperationStatus.Done
                && HpackFieldStrings.TryKnownName(lower[..folded], out var known)
                ? known
                : Encoding.ASCII.GetString(name);
            fields.Append(nameText, strings.Value(nameText, value));
        }
        // Absolute-form (RFC 9112 3.2.2): the Host field must name the target's authority, else Kestrel answers it (400).
        return hosts == 1 && (head.PathAt == 0 || head.RawTarget.AsSpan(AbsolutePrefixBytes.Length, head.PathAt - AbsolutePrefixBytes.Length).SequenceEqual(fields[Microsoft.Net.Http.Headers.HeaderNames.Host].ToString()));
    }

    private static ReadOnlySpan<byte> AbsolutePrefixBytes => "http://"u8;

    private static bool ParseRequestLine(ReadOnlySpan<byte> line, string? lastTarget, ref Http1RequestHead head)
    {
        var space = line.IndexOf((byte)' ');
        if (space <= 0 || line[..space].ContainsAnyExcept(TokenBytes))
        {
            return false;
        }
        var method = line[..space];
        line = line[(space + 1)..];
        space = line.IndexOf((byte)' ');
        if (space <= 0 || line[..space].ContainsAnyExcept(TargetBytes) || !line[(space + 1)..].SequenceEqual("HTTP/1.1"u8))
        {
            return false;
        }
        var target = line[..space];
        var pathAt = 0;
        if (target[0] != (byte)'/')
        {
            // Absolute-form: "http://", an authority of host characters, then nothing or an absolute path.
            if (!target.StartsWith(AbsolutePrefixBytes))
            {
                return false;
            }
            var authority = target[AbsolutePrefixBytes.Length..];
            var end = authority.IndexOf((byte)'/');
            authority = end < 0 ? authority : authority[..end];
            if (authority.IsEmpty || authority.ContainsAnyExcept(HostBytes))
            {
                return false;
            }
            pathAt = AbsolutePrefixBytes.Length + authority.Length;
        }
        head.Method = KnownMethod(method) ?? Encoding.ASCII.GetString(method);
        if (head.Method == HttpMethods.Connect)
        {
            return false;
        }
        head.RawTarget = lastTarget is not null && lastTarget.Length == target.Length && Ascii.Equals(target, lastTarget) ? lastTarget : Encoding.ASCII.GetString(target);
        head.QueryAt = target.IndexOf((byte)'?');
        head.PathAt = pathAt;
        return true;
    }

    private static string? KnownMethod(ReadOnlySpan<byte> method) => method.Length switch
    {
        3 when method.SequenceEqual("GET"u8) => HttpMethods.Get,
        3 when method.SequenceEqual("PUT"u8) => HttpMethods.Put,
        4 when method.SequenceEqual("POST"u8) => HttpMethods.Post,
        4 when method.SequenceEqual("HEAD"u8) => HttpMethods.Head,
        5 when method.SequenceEqual("PATCH"u8) => HttpMethods.Patch,
        5 when method.SequenceEqual("TRACE"u8) => HttpMethods.Trace,
        6 when method.SequenceEqual("DELETE"u8) => HttpMethods.Delete,
        7 when method.SequenceEqual("OPTIONS"u8) => HttpMethods.Options,
        7 when method.SequenceEqual("CONNECT"u8) => HttpMethods.Connect,
        _ => null,
    };

}
