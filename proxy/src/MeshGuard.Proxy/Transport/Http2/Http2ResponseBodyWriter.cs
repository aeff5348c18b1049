using System.Buffers;
using System.IO.Pipelines;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// A response body as the application writes it: octets gather in one pooled buffer and leave as DATA frames when the
/// application flushes (the first flush carries the head too, in the same transport write). When the octets written
/// reach the declared content-length, the last frame ends the stream at once, so a whole answer costs one write.
/// </summary>
internal sealed class Http2ResponseBodyWriter(Http2ServerStream stream) : PipeWriter
{
    private const int MinimumBuffer = 4096;

    private byte[]? _buffer;
    private int _start;
    private int _written;

    /// <summary>Body octets already handed to the connection.</summary>
    public long Sent { get; private set; }

    /// <summary>What was written and not yet sent.</summary>
    public ReadOnlyMemory<byte> Buffered => _buffer is null ? default : _buffer.AsMemory(_start, _written - _start);

    internal void Reset()
    {
        _start = 0;
        _written = 0;
        Sent = 0;
    }

    /// <summary>The stream is done: the buffer goes back to its pool.</summary>
    internal void Release()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }
        Reset();
    }

    /// <summary><paramref name="octets"/> of the buffered octets were sent (or dropped, for an answer without a body).</summary>
    internal void Consumed(int octets)
    {
        _start += octets;
        Sent += octets;
        if (_start == _written)
        {
            _start = 0;
            _written = 0;
        }
    }

    public override void Advance(int bytes)
    {
        if (_buffer is null || _written + bytes > _buffer.Length)
        {
            throw new InvalidOperationException("advanced past the buffer");
        }
        _written += bytes;
    }

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsSpan(_written);
    }

    private void Reserve(int sizeHint)
    {
        var need = Math.Max(sizeHint, 1);
        if (_buffer is not null && _buffer.Length - _written >= need)
        {
            return;
        }
        var pending = _written - _start;
        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(MinimumBuffer, pending + Math.Max(need, pending)));
        if (_buffer is not null)
        {
            _buffer.AsSpan(_start, pending).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
        }
        _buffer = larger;
        _start = 0;
        _written = pending;
    }

    public override bool CanGetUnflushedBytes => true;

    public override long UnflushedBytes => _written - _start;

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => stream.FlushResponseAsync(cancellationToken);

    public override void CancelPendingFlush()
    {
        // A flush waits only on the peer's window; a reset or the connection's end releases it.
    }

    public override void Complete(Exception? exception = null)
    {
        // The stream keeps the completion under way and the application's end waits for it.
        var completing = CompleteAsync(exception);
        if (completing.IsCompleted)
        {
            completing.GetAwaiter().GetResult();
        }
        else
        {
            _ = completing.AsTask();
        }
    }

    public override ValueTask CompleteAsync(Exception? exception = null) => stream.CompleteResponseAsync(exception);
}
