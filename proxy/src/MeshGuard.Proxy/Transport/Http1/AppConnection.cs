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
    private static readonly MemoryPool<byte> Buffers = BlockPool.Large;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private CancellationTokenSource _deadline = new();

    public AppConnection(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        // Reads of up to 32 KiB: a large body moves in few reads and few flushes downstream (4 KiB reads halved the
        // 1 MiB download rate: a flush, a DATA frame and a TLS record each); the block goes back to the pool once read.
        Reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(Buffers, bufferSize: 32 * 1024, minimumReadSize: 4096, leaveOpen: true));
        Writer = PipeWriter.Create(_stream, new StreamPipeWriterOptions(Buffers, minimumBufferSize: 4096, leaveOpen: true));
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
    /// Whether an idle connection still looks usable: the app has not closed it or sent anything unasked. One poll,
    /// taken only for a connection that sat idle a while (one in steady use would have failed on its last request).
    /// </summary>
    public bool LooksAlive()
    {
        try
        {
            return !_socket.Poll(0, SelectMode.SelectRead);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        Reader.Complete();
        Writer.Complete();
        _stream.Dispose();
        _deadline.Dispose();
    }
}
