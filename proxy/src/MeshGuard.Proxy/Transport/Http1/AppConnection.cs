using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>
/// One keep-alive HTTP/1.1 connection to the local app: a socket with a pipe each way (pooled buffers), a
/// timer that bounds how long a request may wait on the app, and per-connection caches of the header strings
/// the app repeats on every answer.
/// </summary>
internal sealed class AppConnection : IDisposable
{
    /// <summary>
    /// How far the connection reads the app's answer ahead of the request that takes it: the app is held back by TCP
    /// beyond it (a caller that stops reading stops the app, and a sidecar's memory stays flat under large answers).
    /// </summary>
    private const int ReadAhead = 64 * 1024;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly Pipe _received;
    private CancellationTokenSource _deadline = new();

    private readonly SizedBlocks _blocks;

    /// <param name="blocks">Where its blocks come from: the data path's (<see cref="DataPathBlocks.AppReads"/>) unless a test says.</param>
    public AppConnection(Socket socket, SizedBlocks? blocks = null)
    {
        _blocks = blocks ?? DataPathBlocks.AppReads;
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        // The answer is received by one loop per connection into a pipe, not read through a stream per request: the
        // socket's awaitable receive is reused, where a stream reader allocated a state machine for each read that
        // waited (one per request at least; measured with the bench's allocation sampler). The reader's continuation
        // runs on the receiving thread, as it did when it read the stream itself.
        _received = new Pipe(new PipeOptions(_blocks, readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: ReadAhead, resumeWriterThreshold: ReadAhead / 2, minimumSegmentSize: _blocks.Small.BlockSize, useSynchronizationContext: false));
        Reader = _received.Reader;
        // Writes stay on large blocks: the writer sends each block it filled, and a request body fills many.
        Writer = PipeWriter.Create(_stream, new StreamPipeWriterOptions(_blocks.Large, minimumBufferSize: 4096, leaveOpen: true));
        _ = ReceiveAsync();
    }

    public PipeReader Reader { get; }

    public PipeWriter Writer { get; }

    /// <summary>Puts the app's answers on the server's response, with this connection's cache of repeated header strings.</summary>
    public ResponseFieldWriter Fields { get; } = new();

    /// <summary>Requests this connection carried before the current one.</summary>
    public int Uses { get; set; }

    /// <summary>When it went back to the pool (a <see cref="TimeProvider"/> timestamp).</summary>
    public long IdleSince { get; set; }

    /// <summary>Cancelled when the app took too long or the caller went away: reads and writes on this connection stop.</summary>
    public CancellationToken Deadline => _deadline.Token;

    /// <summary>Arms the deadline for the next wait on the app.</summary>
    public void Wait(TimeSpan limit) => _deadline.CancelAfter(limit);

    /// <summary>Disarms it; false if it already fired (the connection is then dead).</summary>
    public bool EndWait()
    {
        if (_deadline.IsCancellationRequested)
        {
            return false;
        }
        _deadline.CancelAfter(Timeout.InfiniteTimeSpan);
        return true;
    }

    /// <summary>Stops whatever waits on this connection; it is not reused.</summary>
    public void Abort()
    {
        try
        {
            _deadline.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// Whether an idle connection still looks usable: the app has not closed it or sent anything unasked. One look at
    /// what its pipe holds, taken only for a connection that sat idle a while (one in steady use would have failed on
    /// its last request).
    /// </summary>
    public bool LooksAlive() => !HoldsUnaskedInput();

    /// <summary>
    /// Whether the app sent bytes, or closed the connection, while no request asked it anything: read as the next
    /// request's answer they would hand one caller another's response, so such a connection is not used again. Asked
    /// right after an answer (bytes past its end) and before an idle connection is reused.
    /// </summary>
    public bool HoldsUnaskedInput()
    {
        if (!Reader.TryRead(out var pending))
        {
            return false;
        }
        Reader.AdvanceTo(pending.Buffer.Start);
        return !pending.Buffer.IsEmpty || pending.IsCompleted;
    }

    /// <summary>
    /// The app's bytes into the pipe until it closes the connection, the connection is disposed, or nobody reads any
    /// more. A read into a small block first: an answer's head and a small body fit one, and the block taken for the
    /// next answer is what the connection holds while it waits (an HTTP/2 caller's 128 streams left 128 pooled app
    /// connections, each holding a 32 KiB block: 4.3 MB of pinned heap in the inbound sidecar). A read that fills the
    /// small block is followed by reads of up to 32 KiB until one comes back shorter than a small block: a large body
    /// moves in few reads and few flushes downstream (4 KiB reads halved the 1 MiB download rate: a flush, a DATA frame
    /// and a TLS record each).
    /// </summary>
    private async Task ReceiveAsync()
    {
        var writer = _received.Writer;
        var small = _blocks.Small.BlockSize;
        var large = false;
        Exception? error = null;
        try
        {
            while (true)
            {
                var received = await _socket.ReceiveAsync(writer.GetMemory(large ? _blocks.Large.BlockSize : small), SocketFlags.None);
                if (received == 0)
                {
                    break;
                }
                large = received >= small;
                writer.Advance(received);
                var flushed = await writer.FlushAsync();
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // As a stream would report it: the reader's callers treat a broken connection as an IOException.
            error = new IOException("the app's connection broke: " + e.Message, e);
        }
        await writer.CompleteAsync(error);
    }

    public void Dispose()
    {
        Reader.Complete();
        Writer.Complete();
        _stream.Dispose();
        _deadline.Dispose();
    }
}
