using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>How the body of a response is delimited (RFC 9112 section 6.3).</summary>
internal enum BodyFraming
{
    /// <summary>No body: a HEAD request, or 1xx, 204, 304.</summary>
    None,
    ContentLength,
    Chunked,
    /// <summary>The body runs until the app closes the connection; the connection is not reused.</summary>
    UntilClose,
}

/// <summary>Where a parsed head's end-to-end fields go (the hop-by-hop ones are kept by the parser).</summary>
internal interface IFieldSink
{
    void OnField(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value);
}

/// <summary>
/// The head of an app's HTTP/1.x response, parsed strictly: CRLF line ends only, no folded lines, no space
/// before a colon, one agreed Content-Length, Transfer-Encoding outranking Content-Length (and then the
/// connection is not reused). An app's answer that does not meet these is not passed on: the caller gets 502.
/// </summary>
internal struct Http1ResponseHead
{
    public const int MaxHeadBytes = 64 * 1024;

    public int Status;
    public BodyFraming Framing;
    public long ContentLength;
    /// <summary>The app sent a Content-Length (passed on for HEAD and 304 answers too, which have no body).</summary>
    public bool HasContentLength;
    /// <summary>The connection may carry another request once this response is read.</summary>
    public bool KeepAlive;
    /// <summary>The app's Connection header, when it named options beyond close/keep-alive (rare): those fields are dropped.</summary>
    public string? ConnectionOptions;

    private static ReadOnlySpan<byte> EndOfHead => "\r\n\r\n"u8;

    public enum ParseStatus
    {
        NeedMore,
        Done,
        Invalid,
    }

    /// <summary>
    /// Parses a head from <paramref name="buffer"/>, which starts at a response. On Done, <paramref name="consumed"/> is
    /// where the body begins. Interim 1xx responses are skipped (the caller's sidecar speaks for itself on those).
    /// </summary>
    public static ParseStatus TryParse(ReadOnlySequence<byte> buffer, bool headRequest, IFieldSink sink, out Http1ResponseHead head, out SequencePosition consumed, out string? error)
    {
        head = default;
        error = null;
        consumed = buffer.Start;
        while (true)
        {
            var reader = new SequenceReader<byte>(buffer);
            if (!reader.TryReadTo(out ReadOnlySequence<byte> block, EndOfHead, advancePastDelimiter: true))
            {
                if (buffer.Length > MaxHeadBytes)
                {
                    error = "response head larger than 64 KiB";
                    return ParseStatus.Invalid;
                }
                return ParseStatus.NeedMore;
            }
            if (block.Length + 4 > MaxHeadBytes)
            {
                error = "response head larger than 64 KiB";
                return ParseStatus.Invalid;
            }
            var end = reader.Position;
            var status = block.IsSingleSegment
                ? Parse(block.FirstSpan, headRequest, sink, out head, out error)
                : ParseCopied(block, headRequest, sink, out head, out error);
            if (status != ParseStatus.Done)
            {
                return status;
            }
            consumed = end;
            if (head.Status is >= 100 and < 200)
            {
                if (head.Status == 101)
                {
                    error = "101 Switching Protocols to a request that asked for no upgrade";
                    return ParseStatus.Invalid;
                }
                buffer = buffer.Slice(end);
                continue;
            }
            return ParseStatus.Done;
        }
    }

    private static ParseStatus ParseCopied(ReadOnlySequence<byte> block, bool headRequest, IFieldSink sink, out Http1ResponseHead head, out string? error)
    {
        var rented = ArrayPool<byte>.Shared.Rent((int)block.Length);
        try
        {
            block.CopyTo(rented);
            return Parse(rented.AsSpan(0, (int)block.Length), headRequest, sink, out head, out error);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>The head without its final empty line: a status line, then field lines, each but the last ending in CRLF.</summary>
    private static ParseStatus Parse(ReadOnlySpan<byte> block, bool headRequest, IFieldSink? sink, out Http1ResponseHead head, out string? error)
    {
        head = default;
        error = null;
        var lineEnd = block.IndexOf("\r\n"u8);
        var statusLine = lineEnd < 0 ? block : block[..lineEnd];
        var rest = lineEnd < 0 ? default : block[(lineEnd + 2)..];
        // "HTTP/1.1 200 OK" (the reason phrase may be empty, and its space too).
        if (statusLine.Length < 12 || !statusLine.StartsWith("HTTP/1."u8) || statusLine[8] != (byte)' '
            || (statusLine[7] != (byte)'1' && statusLine[7] != (byte)'0')
            || !Utf8Parser.TryParse(statusLine.Slice(9, 3), out int status, out var digits) || digits != 3 || status < 100
            || (statusLine.Length > 12 && statusLine[12] != (byte)' ') || statusLine.ContainsAny((byte)'\r', (byte)'\n', (byte)0))
        {
            error = "malformed status line";
            return ParseStatus.Invalid;
        }
        head.Status = status;
        if (status < 200)
        {
            // An interim answer's fields are not the final answer's.
            sink = null;
        }
        head.KeepAlive = statusLine[7] == (byte)'1';
        var sawLength = false;
        var chunked = false;
        while (!rest.IsEmpty)
        {
            lineEnd = rest.IndexOf("\r\n"u8);
            var line = lineEnd < 0 ? rest : rest[..lineEnd];
            rest = lineEnd < 0 ? default : rest[(lineEnd + 2)..];
            var colon = line.IndexOf((byte)':');
            // No obs-fold (a line starting with whitespace), no space before the colon, a token for a name.
            if (colon <= 0 || line[colon - 1] is (byte)' ' or (byte)'\t' || !IsToken(line[..colon]))
            {
                error = "malformed header line";
                return ParseStatus.Invalid;
            }
            var name = line[..colon];
            var value = line[(colon + 1)..].Trim(" \t"u8);
            if (value.ContainsAny((byte)'\r', (byte)'\n', (byte)0))
            {
                error = "control character in a header value";
                return ParseStatus.Invalid;
            }
            switch (Hop(name))
            {
                case HopField.ContentLength:
                    if (!Utf8Parser.TryParse(value, out long length, out var used) || used != value.Length || length < 0 || (sawLength && length != head.ContentLength))
                    {
                        error = "invalid or conflicting Content-Length";
                        return ParseStatus.Invalid;
                    }
                    sawLength = true;
                    head.HasContentLength = true;
                    head.ContentLength = length;
                    continue;
                case HopField.TransferEncoding:
                    // Only chunked, once: a coding the sidecar would have to undo or pass on as it is cannot be framed safely.
                    if (chunked || !Ascii.EqualsIgnoreCase(value, "chunked"u8))
                    {
                        error = "a transfer coding other than chunked";
                        return ParseStatus.Invalid;
                    }
                    chunked = true;
                    continue;
                case HopField.Connection:
                    ReadConnection(value, ref head);
                    continue;
                case HopField.Other:
                    continue;
            }
            sink?.OnField(name, value);
        }
        if (headRequest || status is < 200 or 204 or 304)
        {
            head.Framing = BodyFraming.None;
        }
        else if (chunked)
        {
            // RFC 9112 6.1: with Transfer-Encoding, Content-Length is ignored and the connection must close after.
            head.Framing = BodyFraming.Chunked;
            head.KeepAlive &= !sawLength;
        }
        else if (sawLength)
        {
            head.Framing = BodyFraming.ContentLength;
        }
        else
        {
            head.Framing = BodyFraming.UntilClose;
            head.KeepAlive = false;
        }
        return ParseStatus.Done;
    }

    private static void ReadConnection(ReadOnlySpan<byte> value, ref Http1ResponseHead head)
    {
        var named = false;
        foreach (var range in value.Split((byte)','))
        {
            var token = value[range].Trim(" \t"u8);
            if (Ascii.EqualsIgnoreCase(token, "close"u8))
            {
                head.KeepAlive = false;
            }
            else if (!token.IsEmpty && !Ascii.EqualsIgnoreCase(token, "keep-alive"u8))
            {
                named = true;
            }
        }
        if (named)
        {
            head.ConnectionOptions = head.ConnectionOptions is null ? Encoding.Latin1.GetString(value) : head.ConnectionOptions + "," + Encoding.Latin1.GetString(value);
        }
    }

    private enum HopField
    {
        None,
        ContentLength,
        TransferEncoding,
        Connection,
        /// <summary>Hop-by-hop fields that stop here: Keep-Alive, Proxy-Connection, Upgrade, TE.</summary>
        Other,
    }

    private static HopField Hop(ReadOnlySpan<byte> name) => name.Length switch
    {
        14 when Ascii.EqualsIgnoreCase(name, "Content-Length"u8) => HopField.ContentLength,
        17 when Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8) => HopField.TransferEncoding,
        10 when Ascii.EqualsIgnoreCase(name, "Connection"u8) => HopField.Connection,
        10 when Ascii.EqualsIgnoreCase(name, "Keep-Alive"u8) => HopField.Other,
        16 when Ascii.EqualsIgnoreCase(name, "Proxy-Connection"u8) => HopField.Other,
        7 when Ascii.EqualsIgnoreCase(name, "Upgrade"u8) => HopField.Other,
        2 when Ascii.EqualsIgnoreCase(name, "TE"u8) => HopField.Other,
        _ => HopField.None,
    };

    private static readonly SearchValues<byte> TokenBytes = SearchValues.Create(Encoding.ASCII.GetBytes(Http1HeadWriter.TokenCharacters));

    public static bool IsToken(ReadOnlySpan<byte> name) => !name.IsEmpty && !name.ContainsAnyExcept(TokenBytes);
}
