using System.IO.Pipelines;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// Pipes kept for reuse: each stream's answer body goes through one, and a new pipe per request (with its reader,
/// writer, segments and segment stack) was a quarter of the bytes the outbound sidecar allocated per request. A pipe
/// comes back only once both its reader and its writer are completed (<see cref="Http2ClientStream"/> counts the two
/// sides), is reset (its blocks go back to their pool), and is kept while fewer than the bound are.
/// </summary>
internal sealed class PipePool(PipeOptions options, int capacity)
{
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
