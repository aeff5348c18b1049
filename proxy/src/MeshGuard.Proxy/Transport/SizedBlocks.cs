using System.Buffers;
using MeshGuard.Hosting;

namespace MeshGuard.Proxy.Transport;

/// <summary>
/// One of two block pools by the size asked for: a small block where one holds what is asked, a large block otherwise.
/// A reader that asks for a small block until its reads fill one holds a small block while it waits (an idle keep-alive
/// connection, the common case) and moves a large body in large reads.
/// </summary>
internal sealed class SizedBlocks(BlockPool small, BlockPool large) : MemoryPool<byte>
{
    public BlockPool Small => small;

    public BlockPool Large => large;

    public override int MaxBufferSize => large.BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1) =>
        minBufferSize <= small.BlockSize ? small.Rent(minBufferSize) : large.Rent(minBufferSize);

    // The two pools are the caller's, and outlive this view of them.
    protected override void Dispose(bool disposing)
    {
    }
}
