using System.Buffers.Binary;
using MeshGuard.FlowLog;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// The frames a connection has to send, and the one write under way. Frames are appended under a lock; whoever
/// flushes while no write is under way writes the queue to the transport on its own thread and goes on writing what
/// others appended meanwhile; a flush that may wait a moment (<see cref="FlushSoon"/>) leaves the write to the socket
/// engine's next turn (<see cref="EngineTurn"/>), so that streams flushing close together share it. So a lone request
/// costs one transport write, many streams under load share writes, and no writer thread waits for work. The
/// connection appends while it holds its own lock (the order of header blocks must be the order HPACK encoded them);
/// this lock is taken inside that one and never the other way round.
/// </summary>
/// <param name="startSoon">
/// Where a <see cref="FlushSoon"/> write starts: <see cref="EngineTurn.Defer"/> unless a test says.
/// </param>
internal sealed class Http2FrameQueue(Stream transport, Action<Exception> onWriteFailure, Action<IThreadPoolWorkItem>? startSoon = null) : IDisposable, IThreadPoolWorkItem
{
    // What a burst (many streams appending while a write is under way) grows the queue to comes from this pool and
    // goes back to it: a few arrays of each size for every connection of the process. From the shared pool, which keeps
    // one per size on each thread that returned one, the inbound sidecar held 19-23 MB of such arrays after the
    // bench's 1 MiB downloads (its large-object heap, from 0). Larger than the pool's largest is allocated and dropped.
    private static readonly System.Buffers.ArrayPool<byte> Bursts = System.Buffers.ArrayPool<byte>.Create(maxArrayLength: 1024 * 1024, maxArraysPerBucket: 2);

    private readonly Lock _lock = new();
    private PooledBufferWriter _queue = new(burstPool: Bursts);
    private PooledBufferWriter? _spare = new(burstPool: Bursts);
    private bool _writing;
    private bool _closed;

    // Set while a body sender waits for the write under way to take the queue: what is queued stays near
    // HighWater, so a fast upload cannot grow the buffers (and the pool's arrays they come back to).
    private TaskCompletionSource? _taken;

    // Set while the last frame waits for the write under way to end.
    private TaskCompletionSource? _writerDone;

    private static readonly TimeSpan LastWriteTimeout = TimeSpan.FromSeconds(1);

    /// <summary>Queued octets above which a body sender waits for the write under way instead of queuing more.</summary>
    public const int HighWater = 64 * 1024;

    /// <summary>Octets queued and not yet taken by a write.</summary>
    public int QueuedOctets
    {
        get
        {
            lock (_lock)
            {
                return _queue.WrittenCount;
            }
        }
    }

    /// <summary>Octets outside any frame: the connection preface.</summary>
    public void Raw(ReadOnlySpan<byte> octets)
    {
        lock (_lock)
        {
            if (_closed)
            {
                return;
            }
            octets.CopyTo(_queue.GetSpan(octets.Length));
            _queue.Advance(octets.Length);
        }
    }

    public void Frame(Http2FrameType type, byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        lock (_lock)
        {
            if (_closed)
            {
                // The connection is ending: whatever this was, nobody will read it.
                return;
            }
            var span = _queue.GetSpan(Http2Frame.HeaderLength + payload.Length);
            Http2Frame.WriteHeader(span, payload.Length, type, flags, streamId);
            payload.CopyTo(span[Http2Frame.HeaderLength..]);
            _queue.Advance(Http2Frame.HeaderLength + payload.Length);
        }
    }

    /// <summary>A header block as HEADERS and, past <paramref name="maxFrameSize"/>, CONTINUATION frames.</summary>
    public void Headers(int streamId, ReadOnlySpan<byte> block, bool endStream, int maxFrameSize)
    {
        var first = block[..Math.Min(block.Length, maxFrameSize)];
        var flags = (byte)((endStream ? Http2Frame.EndStream : 0) | (first.Length == block.Length ? Http2Frame.EndHeaders : 0));
        Frame(Http2FrameType.Headers, flags, streamId, first);
        for (var rest = block[first.Length..]; !rest.IsEmpty;)
        {
            var part = rest[..Math.Min(rest.Length, maxFrameSize)];
            rest = rest[part.Length..];
            Frame(Http2FrameType.Continuation, rest.IsEmpty ? Http2Frame.EndHeaders : (byte)0, streamId, part);
        }
    }

    public void WindowUpdate(int streamId, int increment)
    {
        Span<byte> payload = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(payload, increment);
        Frame(Http2FrameType.WindowUpdate, 0, streamId, payload);
    }

    public void Reset(int streamId, Http2ErrorCode code)
    {
        Span<byte> payload = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(payload, (uint)code);
        Frame(Http2FrameType.RstStream, 0, streamId, payload);
    }

    /// <summary>Writes what is queued, unless a write is under way (its writer takes this along too).</summary>
    public void Flush() => _ = FlushAsync();

    /// <summary>
    /// As <see cref="Flush"/>, but the write starts a moment later, at the socket engine's next turn (on the thread pool
    /// without inline socket completions), so that the frames other streams append meanwhile go out in the same TLS
    /// record and send. For a connection with other streams in flight: written at once, each request of a busy
    /// connection cost a send of its own, and its peer a receive and a wake-up (measured: 1.8 sends per request in the
    /// outbound sidecar against 1.2 this way, and 16 % less CPU per request).
    /// </summary>
    public void FlushSoon()
    {
        lock (_lock)
        {
            if (_closed || _queue.WrittenCount == 0 || _writing)
            {
                return;
            }
            _writing = true;
        }
        // The queue is its own work item: nothing is allocated per write.
        if (startSoon is null)
        {
            EngineTurn.Defer(this);
        }
        else
        {
            startSoon(this);
        }
    }

    /// <summary>
    /// As <see cref="Flush"/>, and waits when this caller does the writing, or when another write is under way and
    /// more than <see cref="HighWater"/> octets wait behind it (backpressure for a body sender).
    /// </summary>
    public Task FlushAsync()
    {
        lock (_lock)
        {
            if (_closed || _queue.WrittenCount == 0)
            {
                return Task.CompletedTask;
            }
            if (_writing)
            {
                return _queue.WrittenCount < HighWater ? Task.CompletedTask
                    : (_taken ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
            _writing = true;
        }
        return WriteQueuedAsync();
    }

    /// <summary>
    /// The connection's last frame (GOAWAY): nothing is queued or written after it. A write under way is let finish
    /// first (what it had taken stays whole on the wire) and what waited behind it is dropped. Best effort and
    /// bounded, the connection is being closed either way.
    /// </summary>
    public async Task WriteLastAsync(Http2FrameType type, ReadOnlyMemory<byte> payload)
    {
        Task underWay;
        lock (_lock)
        {
            if (_closed)
            {
                return;
            }
            _closed = true;
            ReleaseWaiters();
            underWay = _writing ? (_writerDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task : Task.CompletedTask;
            _writing = true;
        }
        var frame = new byte[Http2Frame.HeaderLength + payload.Length];
        Http2Frame.WriteHeader(frame, payload.Length, type, 0, 0);
        payload.Span.CopyTo(frame.AsSpan(Http2Frame.HeaderLength));
        try
        {
            await underWay.WaitAsync(LastWriteTimeout);
            await transport.WriteAsync(frame).AsTask().WaitAsync(LastWriteTimeout);
        }
        catch (Exception)
        {
            // The peer may be gone already, or not reading.
        }
        finally
        {
            lock (_lock)
            {
                _writing = false;
            }
        }
    }

    /// <summary>No further writes: the connection is ending.</summary>
    public void Close()
    {
        lock (_lock)
        {
            _closed = true;
            ReleaseWaiters();
        }
    }

    /// <summary>Under the lock: the writer stops. A last frame waiting for it goes (and keeps the write to itself).</summary>
    private void EndWriting()
    {
        ReleaseWaiters();
        if (_writerDone is { } last)
        {
            _writerDone = null;
            last.TrySetResult();
            return;
        }
        _writing = false;
    }

    /// <summary>Under the lock: the queue was taken (or will never be), so waiting senders go on.</summary>
    private void ReleaseWaiters()
    {
        _taken?.TrySetResult();
        _taken = null;
    }

    /// <summary>The write a <see cref="FlushSoon"/> started.</summary>
    void IThreadPoolWorkItem.Execute() => _ = WriteQueuedAsync();

    public void Dispose()
    {
        lock (_lock)
        {
            _closed = true;
            if (!_writing)
            {
                _queue.Dispose();
                _spare?.Dispose();
            }
        }
    }

    private async Task WriteQueuedAsync()
    {
        try
        {
            while (true)
            {
                PooledBufferWriter batch;
                lock (_lock)
                {
                    if (_queue.WrittenCount == 0 || _closed)
                    {
                        EndWriting();
                        return;
                    }
                    batch = _queue;
                    _queue = _spare!;
                    _spare = null;
                    ReleaseWaiters();
                }
                await transport.WriteAsync(batch.WrittenMemory);
                batch.Reset();
                lock (_lock)
                {
                    _spare = batch;
                }
            }
        }
        catch (Exception e)
        {
            lock (_lock)
            {
                _closed = true;
                EndWriting();
            }
            onWriteFailure(new IOException("writing to the peer failed: " + e.Message, e));
        }
    }
}
