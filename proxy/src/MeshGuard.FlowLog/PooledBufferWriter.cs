using System.Buffers;

namespace MeshGuard.FlowLog;

/// <summary>
/// A growable octet buffer rented from the shared pool, written through <see cref="IBufferWriter{T}"/>. It serves the
/// sidecar's HTTP/2 frames and header blocks and the control plane's flow-log segments alike, so it lives in the one
/// library both reference. A buffer sized for each use, or grown by doubling from nothing, is a large-object array per
/// flow-log segment (the control plane's collection made four to five per 1 MiB segment: three quarters of its
/// allocated bytes). <see cref="Reset"/> gives a buffer that grew past what its user keeps back to the pool, so a burst
/// does not keep its memory.
/// </summary>
/// <param name="initialCapacity">Rented at once: what the usual use fits in.</param>
/// <param name="keepCapacity">The most <see cref="Reset"/> keeps for the next use.</param>
/// <param name="burstPool">
/// Where buffers larger than <paramref name="keepCapacity"/> come from and go back to; the shared pool when not given.
/// The shared pool keeps an array of each size on every thread that returned one, and trims only on a full
/// collection: a user whose bursts are returned from many threads (a connection's frame queue) left tens of MB of
/// large arrays there.
/// </param>
public sealed class PooledBufferWriter(int initialCapacity = 4096, int keepCapacity = 64 * 1024, ArrayPool<byte>? burstPool = null) : IBufferWriter<byte>, IDisposable
{
    private readonly int _initialCapacity = Math.Max(256, initialCapacity);
    private readonly ArrayPool<byte> _burstPool = burstPool ?? ArrayPool<byte>.Shared;
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(256, initialCapacity));

    public int WrittenCount { get; private set; }

    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, WrittenCount);

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, WrittenCount);

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (WrittenCount + count > _buffer.Length)
        {
            throw new InvalidOperationException("advanced past the buffer");
        }
        WrittenCount += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsMemory(WrittenCount);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsSpan(WrittenCount);
    }

    /// <summary>Empty again for the next use; a buffer grown past <c>keepCapacity</c> goes back to the pool.</summary>
    public void Reset()
    {
        WrittenCount = 0;
        if (_buffer.Length > keepCapacity)
        {
            Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(_initialCapacity);
        }
    }

    /// <summary>Nothing may read <see cref="WrittenMemory"/> after this: the buffer may be another user's by then.</summary>
    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
        {
            Return(buffer);
        }
        WrittenCount = 0;
    }

    private void Reserve(int sizeHint)
    {
        var needed = WrittenCount + Math.Max(1, sizeHint);
        if (needed <= _buffer.Length)
        {
            return;
        }
        var size = Math.Max(_buffer.Length * 2, needed);
        var larger = size > keepCapacity ? _burstPool.Rent(size) : ArrayPool<byte>.Shared.Rent(size);
        _buffer.AsSpan(0, WrittenCount).CopyTo(larger);
        Return(_buffer);
        _buffer = larger;
    }

    // A buffer goes back where its size says it came from (a pool's arrays are never shorter than asked for).
    private void Return(byte[] buffer) => (buffer.Length > keepCapacity ? _burstPool : ArrayPool<byte>.Shared).Return(buffer);
}
