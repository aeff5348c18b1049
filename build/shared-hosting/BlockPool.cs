using System.Buffers;

namespace MeshGuard.Hosting;

/// <summary>
/// Fixed-size pinned buffers, bounded and trimming: the sidecar's data path (<c>Transport/DataPathBlocks</c>) and the
/// control plane's Kestrel (<c>Hosting/KestrelBlocks</c>). Every block comes back:
/// at most <see cref="MaxRetained"/> wait free, and blocks a whole trim interval did not need are released half
/// at a time, so a burst's peak does not stay. The free blocks are a stack: a rent takes the block given back last,
/// whose lines the caches still hold, and the blocks a trim releases are those at the bottom, unused the longest.
/// (A queue handed out the block unused the longest, cold in every cache, on each of a request's few rents.)
/// </summary>
internal sealed class BlockPool : MemoryPool<byte>
{
    /// <summary>How often blocks a whole interval did not need are released (half of them).</summary>
    public static readonly TimeSpan TrimInterval = TimeSpan.FromSeconds(10);

    // Held for a few instructions; on two cores rarely contended.
    private readonly Lock _gate = new();
    private readonly ITimer _trim;
    private Block[] _free = new Block[16];
    private int _freeCount;
    private int _lowWater;
    private long _created;

    public BlockPool(int blockSize, int maxRetained, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        BlockSize = blockSize;
        MaxRetained = maxRetained;
        _trim = time.CreateTimer(static state => ((BlockPool)state!).Trim(), this, TrimInterval, TrimInterval);
    }

    public int BlockSize { get; }

    public int MaxRetained { get; }

    public override int MaxBufferSize => BlockSize;

    /// <summary>Blocks waiting to be rented.</summary>
    public int Free => Volatile.Read(ref _freeCount);

    /// <summary>Blocks ever allocated: flat under a steady load.</summary>
    public long Created => Interlocked.Read(ref _created);

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        Block? block = null;
        lock (_gate)
        {
            if (_freeCount > 0)
            {
                block = _free[--_freeCount];
                _free[_freeCount] = null!;
                _lowWater = Math.Min(_lowWater, _freeCount);
            }
        }
        if (block is null)
        {
            block = new Block(this, GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true));
            Interlocked.Increment(ref _created);
        }
        block.Rented = 1;
        return block;
    }

    private void Return(Block block)
    {
        if (Interlocked.Exchange(ref block.Rented, 0) == 0)
        {
            return; // disposed twice: it must not be handed out to two renters
        }
        lock (_gate)
        {
            if (_freeCount >= MaxRetained)
            {
                return; // beyond the bound: the GC takes it
            }
            if (_freeCount == _free.Length)
            {
                Array.Resize(ref _free, Math.Min(MaxRetained, _free.Length * 2));
            }
            _free[_freeCount++] = block;
        }
    }

    /// <summary>Releases half of the blocks that stayed free through the whole interval: the bottom of the stack.</summary>
    internal void Trim()
    {
        lock (_gate)
        {
            var release = (Math.Min(_lowWater, _freeCount) + 1) / 2;
            if (release > 0)
            {
                Array.Copy(_free, release, _free, 0, _freeCount - release);
                Array.Clear(_free, _freeCount - release, release);
                _freeCount -= release;
            }
            _lowWater = _freeCount;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _trim.Dispose();
            lock (_gate)
            {
                Array.Clear(_free);
                _freeCount = 0;
            }
        }
    }

    private sealed class Block(BlockPool pool, byte[] array) : IMemoryOwner<byte>
    {
        public int Rented;

        public Memory<byte> Memory => array;

        public void Dispose() => pool.Return(this);
    }
}
