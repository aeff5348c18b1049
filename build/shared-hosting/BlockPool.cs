using System.Buffers;
using System.Collections.Concurrent;

namespace MeshGuard.Hosting;

/// <summary>
/// Fixed-size pinned buffers, bounded and trimming: the sidecar's data path (<c>Transport/DataPathBlocks</c>) and the
/// control plane's Kestrel (<c>Hosting/KestrelBlocks</c>). Every block comes back:
/// at most <see cref="MaxRetained"/> wait free, and blocks a whole trim interval did not need are released half
/// at a time, so a burst's peak does not stay.
/// </summary>
internal sealed class BlockPool : MemoryPool<byte>
{
    /// <summary>How often blocks a whole interval did not need are released (half of them).</summary>
    public static readonly TimeSpan TrimInterval = TimeSpan.FromSeconds(10);

    private readonly ConcurrentQueue<Block> _free = new();
    private readonly ITimer _trim;
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
        if (_free.TryDequeue(out var block))
        {
            var free = Interlocked.Decrement(ref _freeCount);
            if (free < Volatile.Read(ref _lowWater))
            {
                Volatile.Write(ref _lowWater, free); // a heuristic: a lost race only trims a little less
            }
        }
        else
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
        if (Interlocked.Increment(ref _freeCount) > MaxRetained)
        {
            Interlocked.Decrement(ref _freeCount);
            return; // beyond the bound: the GC takes it
        }
        _free.Enqueue(block);
    }

    /// <summary>Releases half of the blocks that stayed free through the whole interval.</summary>
    internal void Trim()
    {
        var unneeded = Math.Min(Volatile.Read(ref _lowWater), Free);
        for (var i = 0; i < (unneeded + 1) / 2 && _free.TryDequeue(out _); i++)
        {
            Interlocked.Decrement(ref _freeCount);
        }
        Volatile.Write(ref _lowWater, Free);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _trim.Dispose();
            _free.Clear();
        }
    }

    private sealed class Block(BlockPool pool, byte[] array) : IMemoryOwner<byte>
    {
        public int Rented;

        public Memory<byte> Memory => array;

        public void Dispose() => pool.Return(this);
    }
}
