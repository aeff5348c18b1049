using System.Buffers;
using System.IO.Pipelines;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>How the own HTTP/1.1 server frames an answer's body.</summary>
internal enum ResponseFraming
{
    /// <summary>No body may follow (HEAD, 1xx, 204, 304): what the application writes is dropped.</summary>
    None,
    /// <summary>Content-Length: exactly that many octets, more is refused.</summary>
    Length,
    /// <summary>Chunked: a length unknown when the head left.</summary>
    Chunked,
}

/// <summary>
/// The answer's body on the own HTTP/1.1 server, written straight into the connection's output: the head goes in
/// front of the first octets (so a small answer leaves in one write), a body with a length is passed through as it
/// is, and chunked framing is written around each piece in place. A chunk's size is written in the width its buffer
/// could need, with leading zeros where it is shorter (RFC 9112 7.1 allows them), so the octets need no second copy.
/// </summary>
internal sealed class Http1ResponseBodyWriter(IHttp1ResponseHead head, PipeWriter output) : PipeWriter
{
    private const int MaxSizeDigits = 8;

    private ResponseFraming _framing;
    private long _remaining;
    private Memory<byte> _chunk;
    private int _prefix;
    private byte[]? _discard;

    public bool Started { get; private set; }

    /// <summary>Octets the Content-Length promised and the application has not written.</summary>
    public long Missing => _framing == ResponseFraming.Length ? _remaining : 0;

    public void Reset()
    {
        Started = false;
        _framing = ResponseFraming.None;
        _remaining = 0;
        _chunk = default;
    }

    /// <summary>The head was written with this framing (by <see cref="IHttp1ResponseHead.Write"/>).</summary>
    public void Begin(ResponseFraming framing, long length)
    {
        Started = true;
        _framing = framing;
        _remaining = length;
    }

    private void EnsureStarted()
    {
        if (!Started)
        {
            head.Write(final: false);
        }
    }

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        EnsureStarted();
        switch (_framing)
        {
            case ResponseFraming.Length:
                return output.GetMemory(sizeHint);
            case ResponseFraming.Chunked:
                var memory = output.GetMemory(Math.Max(sizeHint, 1) + MaxSizeDigits + 4);
                // Room for the size, its CRLF, and the data; the CRLF after the data goes in its own small write.
                var digits = Math.Max(1, (64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)memory.Length) + 3) / 4);
                _prefix = digits + 2;
                _chunk = memory;
                return memory[_prefix..];
            default:
                return _discard ??= new byte[4096];
        }
    }

    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        var memory = GetMemory(sizeHint);
        if (_framing == ResponseFraming.None && memory.Length < sizeHint)
        {
            _discard = new byte[sizeHint];
            return _discard;
        }
        return memory.Span;
    }

    public override void Advance(int bytes)
    {
        switch (_framing)
        {
            case ResponseFraming.Length:
                if (bytes > _remaining)
                {
                    throw new InvalidOperationException("the answer's body is longer than its Content-Length");
                }
                _remaining -= bytes;
                output.Advance(bytes);
                return;
            case ResponseFraming.Chunked when bytes > 0:
                var span = _chunk.Span;
                var digits = _prefix - 2;
                var size = bytes;
                for (var at = digits - 1; at >= 0; at--, size >>= 4)
                {
                    span[at] = (byte)"0123456789abcdef"[size & 0xf];
                }
                span[digits] = (byte)'\r';
                span[digits + 1] = (byte)'\n';
                output.Advance(_prefix + bytes);
                output.Write("\r\n"u8);
                _chunk = default;
                return;
        }
    }

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        EnsureStarted();
        return output.FlushAsync(cancellationToken);
    }

    /// <summary>Ends the body (the last chunk); false when it is shorter than its Content-Length promised.</summary>
    public bool End()
    {
        if (!Started)
        {
            head.Write(final: true);
        }
        if (_framing == ResponseFraming.Chunked)
        {
            output.Write("0\r\n\r\n"u8);
            _framing = ResponseFraming.None;
        }
        return Missing == 0;
    }

    public override void CancelPendingFlush() => output.CancelPendingFlush();

    public override void Complete(Exception? exception = null)
    {
        // The server ends the answer once the application returns; the connection's output is not the request's to complete.
    }
}

/// <summary>The side of the server that writes an answer's head into the output, with the framing it chose.</summary>
internal interface IHttp1ResponseHead
{
    /// <summary>Writes the head; <paramref name="final"/> when the application ended without a body (then Content-Length: 0).</summary>
    void Write(bool final);
}
