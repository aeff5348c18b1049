using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using MeshGuard.Proxy.Transport.Http2;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>
/// A request's body on the own HTTP/1.1 server, read straight from the connection's input: a body with a
/// Content-Length is a window onto the input's own buffers (no copy), ending at its last octet so that what follows
/// stays for the next request; a chunked body is decoded into a pooled pipe as it arrives. A body cut short, or
/// chunked framing that is not valid, fails the read (as Kestrel's 400), and the connection is not reused.
/// </summary>
/// <param name="bodyRead">Called once a body has been read to its end: a Content-Length body's last octet, or a chunked body's last chunk and trailers (the input is the server's again).</param>
internal sealed class Http1RequestBodyReader(PipeReader input, Action? bodyRead = null) : PipeReader
{
    private long _remaining;
    private bool _chunked;
    private ChunkedDecoder _decoder;
    private Pipe? _decoded;
    private ReadOnlySequence<byte> _last;
    private bool _failed;
    private bool _reading;
    private long _octets;
    private int _waitedTicks;

    /// <summary>Kestrel's minimum request body data rate: 240 octets a second of waiting, after 5 s of grace.</summary>
    private const int MinOctetsPerSecond = 240;
    private const int GraceSeconds = 5;

    /// <summary>The whole body was read (or there was none): the connection may carry another request.</summary>
    public bool Finished => !_failed && (_chunked ? _decoder.IsDone && (_decoded is null || IsDrained()) : _remaining == 0);

    /// <summary>
    /// The heartbeat's check, once a second: true when a read has been waiting for the caller's octets for more than
    /// the grace time in all, and what came meanwhile is below the minimum rate (a body trickled to hold the connection
    /// and the app's).
    /// </summary>
    public bool TooSlow()
    {
        if (!Volatile.Read(ref _reading))
        {
            return false;
        }
        var waited = ++_waitedTicks;
        return waited > GraceSeconds && Volatile.Read(ref _octets) < (long)MinOctetsPerSecond * waited;
    }

    public void Start(long? length, bool chunked)
    {
        _octets = 0;
        _waitedTicks = 0;
        _remaining = chunked ? 0 : length ?? 0;
        _chunked = chunked;
        _decoder = default;
        _failed = false;
        _last = default;
        if (chunked)
        {
            _decoded = PipePool.StreamBodies.Rent();
        }
    }

    /// <summary>After the request: gives back the decoding pipe.</summary>
    public void End()
    {
        if (_decoded is not null)
        {
            _decoded.Writer.Complete();
            _decoded.Reader.Complete();
            PipePool.StreamBodies.Return(_decoded);
            _decoded = null;
        }
    }

    /// <summary>
    /// Reads and drops what is left of a body the handler did not read (a refusal of an upload), as Kestrel does, so
    /// the caller can finish sending and read the answer, and the connection can carry the next request. Bounded: at
    /// most <paramref name="maxOctets"/> within <paramref name="timeout"/>; false when the body did not end within
    /// them (the connection is then closed).
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    public async ValueTask<bool> DrainAsync(long maxOctets, TimeSpan timeout)
    {
        if (Finished)
        {
            return true;
        }
        if (_failed)
        {
            return false;
        }
        using var limit = new CancellationTokenSource(timeout);
        long dropped = 0;
        try
        {
            while (!Finished && dropped <= maxOctets)
            {
                var result = await ReadAsync(limit.Token);
                dropped += result.Buffer.Length;
                AdvanceTo(result.Buffer.End);
                if (result.IsCanceled || (result.IsCompleted && !Finished))
                {
                    return false;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or BadHttpRequestException)
        {
            return false;
        }
        return Finished;
    }

    public override bool TryRead(out ReadResult result)
    {
        if (_chunked)
        {
            return TryReadChunked(out result);
        }
        if (_remaining == 0)
        {
            result = new ReadResult(default, false, true);
            return true;
        }
        if (!input.TryRead(out var read))
        {
            result = default;
            return false;
        }
        result = Window(read);
        return true;
    }

    public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (_chunked)
        {
            return await ReadChunkedAsync(cancellationToken);
        }
        if (_remaining == 0)
        {
            return new ReadResult(default, false, true);
        }
        Volatile.Write(ref _reading, true);
        try
        {
            return Window(await input.ReadAsync(cancellationToken));
        }
        finally
        {
            Volatile.Write(ref _reading, false);
        }
    }

    private ReadResult Window(ReadResult read)
    {
        var buffer = read.Buffer;
        if (buffer.Length >= _remaining)
        {
            _last = buffer.Slice(0, _remaining);
            return new ReadResult(_last, read.IsCanceled, true);
        }
        if (read.IsCompleted)
        {
            input.AdvanceTo(buffer.Start);
            _failed = true;
            throw new BadHttpRequestException("the request body ended before its Content-Length", StatusCodes.Status400BadRequest);
        }
        _last = buffer;
        return new ReadResult(buffer, read.IsCanceled, false);
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (_chunked)
        {
            _decoded!.Reader.AdvanceTo(consumed, examined);
            return;
        }
        if (_last.IsEmpty && _remaining == 0)
        {
            return;
        }
        var taken = _last.Slice(0, consumed).Length;
        _remaining -= taken;
        Volatile.Write(ref _octets, _octets + taken);
        // Examined beyond what was consumed only within the body: octets of the next request are never marked seen.
        input.AdvanceTo(consumed, examined);
        _last = default;
        if (_remaining == 0 && taken > 0)
        {
            bodyRead?.Invoke();
        }
    }

    // ---- chunked ----

    private bool TryReadChunked(out ReadResult result)
    {
        var decoded = _decoded!.Reader;
        if (decoded.TryRead(out result))
        {
            if (!result.Buffer.IsEmpty || result.IsCompleted || result.IsCanceled)
            {
                return true;
            }
            decoded.AdvanceTo(result.Buffer.Start);
        }
        if (!input.TryRead(out var read))
        {
            return false;
        }
        Decode(read);
        return decoded.TryRead(out result);
    }

    private async ValueTask<ReadResult> ReadChunkedAsync(CancellationToken cancellationToken)
    {
        var decoded = _decoded!.Reader;
        while (true)
        {
            if (decoded.TryRead(out var ready))
            {
                if (!ready.Buffer.IsEmpty || ready.IsCompleted || ready.IsCanceled)
                {
                    return ready;
                }
                decoded.AdvanceTo(ready.Buffer.Start);
            }
            ReadResult read;
            Volatile.Write(ref _reading, true);
            try
            {
                read = await input.ReadAsync(cancellationToken);
            }
            finally
            {
                Volatile.Write(ref _reading, false);
            }
            if (read.IsCanceled)
            {
                input.AdvanceTo(read.Buffer.Start);
                return new ReadResult(default, true, false);
            }
            Decode(read);
        }
    }

    private void Decode(ReadResult read)
    {
        var reader = new SequenceReader<byte>(read.Buffer);
        var status = _decoder.Decode(ref reader, _decoded!.Writer, trailers: null);
        Volatile.Write(ref _octets, _octets + reader.Consumed);
        if (status == ChunkedDecoder.Status.Invalid || (status == ChunkedDecoder.Status.NeedMore && read.IsCompleted))
        {
            input.AdvanceTo(reader.Position);
            _failed = true;
            throw new BadHttpRequestException("the request's chunked body is not valid", StatusCodes.Status400BadRequest);
        }
        input.AdvanceTo(reader.Position, status == ChunkedDecoder.Status.Done ? reader.Position : read.Buffer.End);
        if (status == ChunkedDecoder.Status.Done)
        {
            _decoded.Writer.Complete();
            // The last chunk and the trailers are read: what follows is the server's.
            bodyRead?.Invoke();
        }
        else
        {
            // A pipe without a pause threshold: the flush completes at once and only publishes the octets.
            PipePool.Append(_decoded.Writer, default);
        }
    }

    private bool IsDrained()
    {
        if (!_decoded!.Reader.TryRead(out var rest))
        {
            return false;
        }
        _decoded.Reader.AdvanceTo(rest.Buffer.Start);
        return rest.Buffer.IsEmpty && rest.IsCompleted;
    }

    public override void CancelPendingRead()
    {
        if (_chunked)
        {
            if (!_decoder.IsDone)
            {
                // As below: once the body is read, a read pending on the input is the server's next head.
                input.CancelPendingRead();
            }
            _decoded?.Reader.CancelPendingRead();
            return;
        }
        if (_remaining > 0)
        {
            // A body read done has nothing pending on the input: the read there is the server's next head.
            input.CancelPendingRead();
        }
    }

    public override void Complete(Exception? exception = null)
    {
        // The connection's input is the server's, not the request's: completing the body reader only stops reading.
    }
}
