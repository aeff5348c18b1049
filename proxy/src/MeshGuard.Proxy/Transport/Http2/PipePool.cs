using System.Buffers;
using System.IO.Pipelines;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// Pipes kept for reuse: each stream's body goes through one (an answer's on the client side, a request's on the server's), and a new pipe per request (with its reader,
/// writer, segments and segment stack) was a quarter of the bytes the outbound sidecar allocated per request. A pipe
/// comes back only once both its reader and its writer are completed (<see cref="Http2ClientStream"/> counts the two
/// sides), is reset (its blocks go back to their pool), and is kept while fewer than the bound are.
/// </summary>
internal sealed class PipePool(PipeOptions options, int capacity)
{
    // Blocks of the small pool: a small body holds 4 KiB while it waits to be read, not 16. No pause threshold: flow
    // control bounds what a stream's pipe holds. One options object serves every stream.
    private static readonly PipeOptions StreamBodyOptions = new(DataPathBlocks.Small, pauseWriterThreshold: 0, resumeWriterThreshold: 0, minimumSegmentSize: DataPathBlocks.Small.BlockSize, useSynchronizationContext: false);

    /// <summary>Body pipes for every HTTP/2 stream of every connection, both sides: as many are kept as streams are commonly in flight.</summary>
    public static readonly PipePool StreamBodies = new(StreamBodyOptions, capacity: 256);

    /// <summary>The connection reader's copy of a DATA frame's octets into a stream's body pipe; never waits (no pause threshold).</summary>
    public static void Append(PipeWriter writer, in ReadOnlySequence<byte> data)
    {
        foreach (var segment in data)
        {
            writer.Write(segment.Span);
        }
        var flush = writer.FlushAsync();
        System.Diagnostics.Debug.Assert(flush.IsCompleted, "a pipe without a pause threshold flushes at once");
        flush.GetAwaiter().GetResult();
    }

    private readonly Pipe?[] _free = new Pipe?[capacity];
    private readonly Lock _sync = new();
    private int _count;

    /// <summary>The pipes kept now (for tests).</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _count;
            }
        }
    }

    public Pipe Rent()
    {
        lock (_sync)
        {
            if (_count > 0)
            {
                var pipe = _free[--_count]!;
                _free[_count] = null;
                return pipe;
            }
        }
        return new Pipe(options);
    }

    /// <summary>Takes back a pipe whose reader and writer are both completed.</summary>
    public void Return(Pipe pipe)
    {
        pipe.Reset();
        lock (_sync)
        {
            if (_count < _free.Length)
            {
                _free[_count++] = pipe;
            }
        }
    }
}
