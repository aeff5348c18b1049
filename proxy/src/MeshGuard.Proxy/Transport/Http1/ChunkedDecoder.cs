using System.Buffers;
using System.Buffers.Text;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>
/// Undoes HTTP/1.1 chunked framing (RFC 9112 section 7.1) as bytes arrive: chunk data goes to the output,
/// extensions are ignored, trailer fields go to a sink. Strict and bounded: a size line of at most 1 KiB, sizes
/// below 2^60, CRLF after each chunk, trailers of at most 16 KiB; anything else is an error, never a guess.
/// </summary>
internal struct ChunkedDecoder
{
    private const int MaxLine = 1024;
    private const int MaxTrailers = 16 * 1024;

    private State _state;
    private long _remaining;
    private int _trailerBytes;

    private enum State
    {
        Size,
        Data,
        DataEnd,
        Trailers,
        Done,
    }

    public enum Status
    {
        NeedMore,
        Done,
        Invalid,
    }

    public readonly bool IsDone => _state == State.Done;

    /// <summary>
    /// Decodes what it can of <paramref name="reader"/>: data into <paramref name="output"/>, trailers into
    /// <paramref name="trailers"/>. Consumes only whole lines, so a partial line stays for the next call.
    /// </summary>
    public Status Decode(ref SequenceReader<byte> reader, IBufferWriter<byte> output, IFieldSink? trailers)
    {
        while (true)
        {
            switch (_state)
            {
                case State.Size:
                    if (!TryReadLine(ref reader, out var line, out var tooLong))
                    {
                        return tooLong ? Status.Invalid : Status.NeedMore;
                    }
                    if (!TryParseSize(line, out _remaining))
                    {
                        return Status.Invalid;
                    }
                    _state = _remaining == 0 ? State.Trailers : State.Data;
                    continue;
                case State.Data:
                    if (reader.End)
                    {
                        return Status.NeedMore;
                    }
                    var take = (int)Math.Min(_remaining, reader.UnreadSpan.Length);
                    output.Write(reader.UnreadSpan[..take]);
                    reader.Advance(take);
                    _remaining -= take;
                    if (_remaining == 0)
                    {
                        _state = State.DataEnd;
                    }
                    continue;
                case State.DataEnd:
                    if (reader.Remaining < 2)
                    {
                        return Status.NeedMore;
                    }
                    if (!reader.IsNext("\r\n"u8, advancePast: true))
                    {
                        return Status.Invalid;
                    }
                    _state = State.Size;
                    continue;
                case State.Trailers:
                    if (!TryReadLine(ref reader, out var field, out tooLong))
                    {
                        return tooLong ? Status.Invalid : Status.NeedMore;
                    }
                    if (field.IsEmpty)
                    {
                        _state = State.Done;
                        return Status.Done;
                    }
                    _trailerBytes += field.Length + 2;
                    if (_trailerBytes > MaxTrailers || !TryReadField(field, trailers))
                    {
                        return Status.Invalid;
                    }
                    continue;
                default:
                    return Status.Done;
            }
        }
    }

    private static bool TryReadLine(ref SequenceReader<byte> reader, out ReadOnlySpan<byte> line, out bool tooLong)
    {
        tooLong = false;
        line = default;
        if (reader.UnreadSpan.IndexOf("\r\n"u8) is var at and >= 0)
        {
            if (at > MaxLine)
            {
                tooLong = true;
                return false;
            }
            line = reader.UnreadSpan[..at];
            reader.Advance(at + 2);
            return true;
        }
        // The line crosses a segment boundary (rare): copy it out.
        var start = reader;
        if (!reader.TryReadTo(out ReadOnlySequence<byte> sequence, "\r\n"u8, advancePastDelimiter: true))
        {
            tooLong = reader.Remaining > MaxLine;
            return false;
        }
        if (sequence.Length > MaxLine)
        {
            reader = start;
            tooLong = true;
            return false;
        }
        line = sequence.ToArray();
        return true;
    }

    private static bool TryParseSize(ReadOnlySpan<byte> line, out long size)
    {
        // chunk-size [ chunk-ext ]: the extension is not ours to read, only to skip.
        var semicolon = line.IndexOf((byte)';');
        var digits = (semicolon < 0 ? line : line[..semicolon]).TrimEnd(" \t"u8);
        size = 0;
        if (digits.IsEmpty || digits.Length > 15)
        {
            return false;
        }
        return Utf8Parser.TryParse(digits, out size, out var used, 'X') && used == digits.Length;
    }

    private static bool TryReadField(ReadOnlySpan<byte> line, IFieldSink? sink)
    {
        var colon = line.IndexOf((byte)':');
        if (colon <= 0 || !Http1ResponseHead.IsToken(line[..colon]))
        {
            return false;
        }
        var value = line[(colon + 1)..].Trim(" \t"u8);
        if (value.ContainsAny((byte)'\r', (byte)'\n', (byte)0))
        {
            return false;
        }
        sink?.OnField(line[..colon], value);
        return true;
    }
}
