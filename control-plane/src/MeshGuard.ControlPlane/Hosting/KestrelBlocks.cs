using System.Buffers;
using MeshGuard.Hosting;
using Microsoft.AspNetCore.Connections;

namespace MeshGuard.ControlPlane.Hosting;

/// <summary>
/// Kestrel's buffers on the control plane: 16 KiB blocks (<see cref="BlockPool"/>) instead of Kestrel's 4 KiB. A
/// socket is read into one block at a time, so with 4 KiB blocks the sidecars' flow-log uploads (some 650 KB a
/// segment, most of what this process receives) came in 4 KiB receives, each after a one-byte peek that waits for
/// data: 10,400 receive calls a second at the pair bench's 17k requests a second, 2,450 with these. A TLS record is
/// up to 16 KiB; a block that size takes one whole. Idle connections hold no block (Kestrel waits for data before it
/// rents one). /metrics shows the blocks (meshguard_cp_buffer_blocks_created_total, meshguard_cp_buffer_free_blocks).
/// </summary>
internal sealed class KestrelBlocks(TimeProvider time) : IMemoryPoolFactory<byte>
{
    public const int BlockSize = 16 * 1024;

    private readonly Lock _gate = new();
    private readonly List<BlockPool> _pools = [];

    /// <summary>One pool per Kestrel transport; 1,024 free blocks (16 MiB) at most each, half of them released after a quiet 10 s.</summary>
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null)
    {
        var pool = new BlockPool(BlockSize, maxRetained: 1024, time);
        lock (_gate)
        {
            _pools.Add(pool);
        }
        return pool;
    }

    /// <summary>Blocks ever allocated by the pools this factory made.</summary>
    public long Created => Sum(static p => p.Created);

    /// <summary>Blocks free in those pools now.</summary>
    public long Free => Sum(static p => p.Free);

    private long Sum(Func<BlockPool, long> of)
    {
        lock (_gate)
        {
            var total = 0L;
            foreach (var pool in _pools)
            {
                total += of(pool);
            }
            return total;
        }
    }
}
