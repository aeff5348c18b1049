using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// A request body as the application reads it: the stream's pipe, with the octets the application consumes counted
/// and given back to the peer as window, and the interim 100 sent before the first read of a body the peer asked
/// to confirm. A request without a body reads as ended at once.
/// </summary>
internal sealed class Http2RequestBodyReader(Http2ServerStream stream) : PipeReader
{
    private ReadOnlySequence<byte> _last;
    private bool _released;

    /// <summary>The body was read to its end: the request's trailers, if any, are known.</summary>
    public bool ReachedEnd { get; private set; }

    internal void Reset()
    {
        _last = default;
        _released = false;
        ReachedEnd = false;
    }

    /// <summary>The application is done with the stream: its side of the pipe ends.</summary>
    internal void Release()
    {
        if (_released)
        {
            return;
        }
        _released = true;
        stream.BodyPipe?.Reader.Complete();
    }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (stream.BodyPipe is not { } pipe || _released)
        {
            ReachedEnd = true;
            return new(new ReadResult(ReadOnlySequence<byte>.Empty, isCanceled: false, isCompleted: true));
        }
        stream.BeforeBodyRead();
        var read = pipe.Reader.ReadAsync(cancellationToken);
        if (read.IsCompletedSuccessfully)
        {
            return new(Seen(read.Result));
        }
        return ReadSlowAsync(read);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ReadResult> ReadSlowAsync(ValueTask<ReadResult> read) => Seen(await read);

    public override bool TryRead(out ReadResult result)
    {
        if (stream.BodyPipe is not { } pipe || _released)
        {
            ReachedEnd = true;
            result = new ReadResult(ReadOnlySequence<byte>.Empty, isCanceled: false, isCompleted: true);
            return true;
        }
        stream.BeforeBodyRead();
        if (!pipe.Reader.TryRead(out result))
        {
            return false;
        }
        result = Seen(result);
        return true;
    }

    private ReadResult Seen(ReadResult result)
    {
        _last = result.Buffer;
        if (result.IsCompleted)
        {
            ReachedEnd = true;
        }
        return result;
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (stream.BodyPipe is not { } pipe || _released)
        {
            return;
        }
        var octets = _last.Slice(_last.Start, consumed).Length;
        _last = default;
        pipe.Reader.AdvanceTo(consumed, examined);
        stream.BodyConsumed((int)octets);
    }

    public override void CancelPendingRead() => stream.BodyPipe?.Reader.CancelPendingRead();

    public override void Complete(Exception? exception = null)
    {
        // The application stops reading; the stream keeps the pipe until it is recycled, and resets the peer's
        // upload when the answer ends before the body did.
    }
}
