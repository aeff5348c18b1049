using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// One request's stream on an <see cref="Http2ClientConnection"/>. The connection's reader fills it (answer head,
/// body, trailers); the request's own task reads it. Only the reader writes into the body pipe, so the pipe never
/// has two writers; the request's task gives back window as it reads, which bounds what the peer may send ahead.
/// The object is used again for a later stream of the same connection (<see cref="Open"/>), but only once the request's
/// task released it with nothing of its own still running on it, the stream left the connection's table, and the
/// reader stands between frames: no frame that came for the old stream can then reach the new one.
/// </summary>
internal sealed class Http2ClientStream : Http2StreamSendWindow, IHpackFieldSink, IValueTaskSource
{
    private readonly Http2ClientConnection _connection;
    private Pipe _body = null!;
    // Holds on the pooled body pipe and field array: the request's task (until Release), the connection's reader (until
    // the body's end or failure, whichever comes first) and, while it runs, an Interrupt from either. At none both go
    // back to their pools, so nothing may touch them after its own hold is dropped.
    private int _pipeHolds;
    private int _readerDone;
    private int _writerDone;
    // The answer head's one waiter (the request's task), completed once by the reader or by a failure: a value-task
    // source inside the stream rather than a TaskCompletionSource and its Task, two objects less per request. Where the
    // waiter goes on is chosen as it is completed (SettleHead).
    private ManualResetValueTaskSourceCore<bool> _head = new() { RunContinuationsAsynchronously = true };
    private int _headSettled;
    // The answer's fields, in a pooled array (room for a usual answer's at once) that goes back with the body pipe;
    // trailers only when an answer has them.
    private (string Name, string Value)[] _fields = [];
    private int _fieldCount;
    private List<(string Name, string Value)>? _trailers;
    private int _unackedBytes;
    private bool _inTrailers;

    public Http2ClientStream(Http2ClientConnection connection)
    {
        _connection = connection;
    }

    /// <summary>Under the connection's lock: the object starts stream <paramref name="id"/>, new or used before.</summary>
    internal void Open(int id, int sendWindow)
    {
        Id = id;
        SendWindow = sendWindow;
        ReceiveWindow = Http2ClientConnection.StreamReceiveWindow;
        RequestEnded = false;
        ResponseEnded = false;
        HeadReceived = false;
        Failure = null;
        WindowWaiter = null;
        Status = 0;
        _body = PipePool.StreamBodies.Rent();
        _fields = ArrayPool<(string Name, string Value)>.Shared.Rent(8);
        _fieldCount = 0;
        _trailers?.Clear();
        _unackedBytes = 0;
        _inTrailers = false;
        _readerDone = 0;
        _writerDone = 0;
        _headSettled = 0;
        _head.Reset();
        Volatile.Write(ref _pipeHolds, 2);
    }

    public int Id { get; private set; }

    /// <summary>The answer's status, once <see cref="ReadHeadAsync"/> completed.</summary>
    public int Status { get; private set; }

    /// <summary>The answer's fields (pseudo-fields left out), once <see cref="ReadHeadAsync"/> completed. (A span: a foreach over it boxes no enumerator.)</summary>
    public ReadOnlySpan<(string Name, string Value)> Fields => _fields.AsSpan(0, _fieldCount);

    /// <summary>The answer's trailers, once the body is read to its end; empty when it had none.</summary>
    public ReadOnlySpan<(string Name, string Value)> Trailers => CollectionsMarshal.AsSpan(_trailers);

    // State below is guarded by the connection's lock.

    /// <summary>What the peer may still send on this stream: a peer that sends past it is refused, so a slow reader holds a bounded body.</summary>
    internal int ReceiveWindow { get; set; } = Http2ClientConnection.StreamReceiveWindow;

    internal bool RequestEnded { get; set; }

    internal bool ResponseEnded { get; set; }

    internal bool HeadReceived { get; set; }

    internal Http2StreamException? Failure { get; set; }


    /// <summary>
    /// The answer's head, after any 1xx answers; throws <see cref="Http2StreamException"/> when the stream ended without
    /// one. Awaited once, by the request's task.
    /// </summary>
    public ValueTask ReadHeadAsync() => new(this, _head.Version);

    private void SettleHead(Http2StreamException? failure, bool onThisThread = false)
    {
        if (Interlocked.Exchange(ref _headSettled, 1) != 0)
        {
            return;
        }
        _head.RunContinuationsAsynchronously = !onThisThread;
        if (failure is null)
        {
            _head.SetResult(true);
        }
        else
        {
            _head.SetException(failure);
        }
    }

    void IValueTaskSource.GetResult(short token) => _head.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _head.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _head.OnCompleted(continuation, state, token, flags);

    /// <summary>
    /// Reads the answer's body; the caller hands each result back with <see cref="Consumed"/>. Throws
    /// <see cref="Http2StreamException"/> when the stream broke, or was reset by this side, before the body's end.
    /// </summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    public async ValueTask<ReadResult> ReadBodyAsync()
    {
        var result = await _body.Reader.ReadAsync();
        if (result.IsCanceled)
        {
            throw _connection.FailureOf(this) ?? new Http2StreamException(Http2ErrorCode.Cancel, "the stream was reset by this side");
        }
        return result;
    }

    /// <summary>The whole of <paramref name="result"/>'s buffer was used: it is released, and its octets are offered back as window.</summary>
    public void Consumed(in ReadResult result)
    {
        var length = (int)result.Buffer.Length;
        _body.Reader.AdvanceTo(result.Buffer.End);
        if (length == 0 || result.IsCompleted)
        {
            return;
        }
        _unackedBytes += length;
        if (_unackedBytes >= Http2ClientConnection.StreamReceiveWindow / 2)
        {
            _connection.ReturnWindow(this, _unackedBytes);
            _unackedBytes = 0;
        }
    }

    /// <summary>Sends request body octets, waiting for flow-control window as needed.</summary>
    public ValueTask SendDataAsync(ReadOnlyMemory<byte> data, bool endStream, CancellationToken cancellation) =>
        _connection.SendDataAsync(this, data, endStream, cancellation);

    /// <summary>Ends the stream now (RST_STREAM) unless it has ended both ways; the body reader sees its end.</summary>
    public void Reset(Http2ErrorCode code = Http2ErrorCode.Cancel) => _connection.ResetStream(this, code);

    /// <summary>
    /// The request's task is done with the stream: it reads its body and fields no more, and touches the stream no more.
    /// With <paramref name="reusable"/> (nothing the task started still runs on the stream, such as a body upload) the
    /// object may serve a later stream of the connection; otherwise it is left to the collector.
    /// </summary>
    public void Release(bool reusable = true)
    {
        if (Interlocked.Exchange(ref _readerDone, 1) != 0)
        {
            return;
        }
        _body.Reader.Complete();
        DropPipe();
        if (reusable)
        {
            _connection.Retire(this);
        }
    }

    void IHpackFieldSink.OnField(string name, string value)
    {
        if (name.Length > 0 && name[0] == ':')
        {
            if (!_inTrailers && name == ":status" && int.TryParse(value, System.Globalization.NumberStyles.None, null, out var status) && value.Length == 3)
            {
                Status = status;
                return;
            }
            throw new HpackException($"an answer holds the pseudo-field {name}");
        }
        if (_inTrailers)
        {
            (_trailers ??= []).Add((name, value));
            return;
        }
        if (_fieldCount == _fields.Length)
        {
            var larger = ArrayPool<(string Name, string Value)>.Shared.Rent(_fields.Length * 2);
            _fields.AsSpan().CopyTo(larger);
            ArrayPool<(string Name, string Value)>.Shared.Return(_fields, clearArray: true);
            _fields = larger;
        }
        _fields[_fieldCount++] = (name, value);
    }

    // Called by the connection's reader only.
    internal void BeginHeaderBlock()
    {
        _inTrailers = HeadReceived;
        if (!_inTrailers)
        {
            Status = 0;
            _fieldCount = 0;
        }
    }

    /// <summary>
    /// A header block ended: true when it was the final answer head (not a 1xx); the reader then settles it with
    /// <see cref="SettleReceivedHead"/> once it has handled the rest of the read.
    /// </summary>
    internal bool EndHeaderBlock()
    {
        if (_inTrailers)
        {
            return false;
        }
        if (Status == 0)
        {
            throw new HpackException("an answer has no :status");
        }
        if (Status < 200)
        {
            return false;
        }
        HeadReceived = true;
        return true;
    }

    /// <summary>
    /// Called by the reader after the read that brought the final head. An answer that ended in that read (its body
    /// whole in the pipe) is taken by the request's task right here, on the reader's thread: its answer is written to
    /// the app and sent with no thread-pool hand-off, and the reader reads on once the task waits again (it never
    /// waits on the reader). The head of an answer still arriving wakes the request's task on the thread pool, so a
    /// long body never holds up the connection's other streams.
    /// </summary>
    internal void SettleReceivedHead() => SettleHead(null, onThisThread: ResponseEnded);

    internal void WriteBody(in ReadOnlySequence<byte> data)
    {
        if (Volatile.Read(ref _writerDone) != 0)
        {
            return;
        }
        PipePool.Append(_body.Writer, data);
    }

    internal void EndBody() => CompleteWriter(null);

    /// <summary>This side reset the stream: whoever waits on its answer stops waiting (the reader alone writes the body pipe).</summary>
    internal void Interrupt(Http2StreamException failure)
    {
        SettleHead(failure);
        if (!TryHoldPipe())
        {
            return;
        }
        try
        {
            if (Volatile.Read(ref _readerDone) == 0)
            {
                _body.Reader.CancelPendingRead();
            }
        }
        finally
        {
            DropPipe();
        }
    }

    internal void Fail(Http2StreamException failure)
    {
        SettleHead(failure);
        CompleteWriter(failure);
    }

    /// <summary>The body's end or failure, once: a later one (a reset after the end) must not touch a pipe that went back to the pool.</summary>
    private void CompleteWriter(Exception? failure)
    {
        if (Interlocked.Exchange(ref _writerDone, 1) != 0)
        {
            return;
        }
        _body.Writer.Complete(failure);
        DropPipe();
    }

    /// <summary>A hold for one operation, unless every hold is gone (the pipe is back in the pool, maybe another stream's now).</summary>
    private bool TryHoldPipe()
    {
        var holds = Volatile.Read(ref _pipeHolds);
        while (holds > 0)
        {
            var seen = Interlocked.CompareExchange(ref _pipeHolds, holds + 1, holds);
            if (seen == holds)
            {
                return true;
            }
            holds = seen;
        }
        return false;
    }

    private void DropPipe()
    {
        if (Interlocked.Decrement(ref _pipeHolds) == 0)
        {
            PipePool.StreamBodies.Return(_body);
            _fieldCount = 0;
            ArrayPool<(string Name, string Value)>.Shared.Return(_fields, clearArray: true);
        }
    }
}
