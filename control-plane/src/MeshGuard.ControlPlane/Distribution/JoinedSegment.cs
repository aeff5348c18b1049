using System.Buffers;

namespace MeshGuard.ControlPlane.Distribution;

/// <summary>
/// The parts of one uploaded flow-log segment, joined in one buffer rented from the shared pool and returned when the
/// call is done with it. A segment is usually about 1 MiB: a buffer grown by doubling from nothing made four to five
/// large-object-heap arrays per segment (three quarters of the control plane's allocated bytes while it collected
/// from two busy sidecars), each one a full collection's work later.
/// </summary>
internal sealed class JoinedSegment : IDisposable
{
    /// <summary>What a usual segment fits in (the sidecar cuts at the last signed record within 1 MiB).</summary>
    private const int UsualBytes = (1024 * 1024) + (64 * 1024);

    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(UsualBytes);

    public int Length { get; private set; }

    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, Length);

    public void Append(ReadOnlySpan<byte> part)
    {
        if (Length + part.Length > _buffer.Length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, Length + part.Length));
            _buffer.AsSpan(0, Length).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }
        part.CopyTo(_buffer.AsSpan(Length));
        Length += part.Length;
    }

    /// <summary>Nothing may read <see cref="Written"/> after this: the buffer is another call's.</summary>
    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        Length = 0;
    }
}
