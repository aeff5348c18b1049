using System.Buffers;

namespace MeshGuard.FlowLog.Tests;

/// <summary>The pooled buffer a segment's parts (or its lines' hashes) are gathered in.</summary>
public sealed class PooledBufferWriterTests
{
    [Fact]
    public void PartsWrittenPastTheExpectedSizeAreKeptWholeAndInOrder()
    {
        using var buffer = new PooledBufferWriter(initialCapacity: 300);
        var expected = new List<byte>();
        for (var part = 0; part < 40; part++)
        {
            var bytes = Enumerable.Range(0, 97).Select(i => (byte)(part * 7 + i)).ToArray();
            buffer.Write(bytes);
            expected.AddRange(bytes);
        }
        Assert.Equal(expected.Count, buffer.WrittenCount);
        Assert.Equal(expected, buffer.WrittenMemory.ToArray());
    }

    [Fact]
    public void AnAdvancePastWhatWasGivenIsRefusedAndAfterDisposeNothingIsHeld()
    {
        var buffer = new PooledBufferWriter(initialCapacity: 16);
        var room = buffer.GetSpan(8).Length;
        Assert.Throws<InvalidOperationException>(() => buffer.Advance(room + 1));
        buffer.Advance(8);
        buffer.Dispose();
        Assert.Equal(0, buffer.WrittenCount);
        Assert.True(buffer.WrittenMemory.IsEmpty);
        buffer.Dispose(); // twice is harmless: nothing goes back to the pool a second time
    }

    [Fact]
    public void ABufferGrownPastWhatItKeepsComesFromItsBurstPoolAndGoesBackThereWhole()
    {
        var bursts = new CountingPool();
        var buffer = new PooledBufferWriter(initialCapacity: 1024, keepCapacity: 4096, burstPool: bursts);
        var data = Enumerable.Range(0, 20_000).Select(i => (byte)i).ToArray();
        buffer.Write(data);
        Assert.Equal(data, buffer.WrittenMemory.ToArray());
        // Grown 1 KiB -> 2 -> 4 (the shared pool's) -> 8 -> 16 -> 32 KiB (the burst pool's): each larger one from the
        // burst pool, each given up on growing back to it.
        Assert.Equal([8192, 16384, 32768], bursts.Rented);
        Assert.Equal([8192, 16384], bursts.Returned);
        buffer.Reset();
        Assert.Equal([8192, 16384, 32768], bursts.Returned);
        Assert.Equal(0, buffer.WrittenCount);
        buffer.Write(data.AsSpan(0, 100));
        buffer.Dispose();
        Assert.Equal(3, bursts.Returned.Count);
    }

    private sealed class CountingPool : ArrayPool<byte>
    {
        public List<int> Rented { get; } = [];

        public List<int> Returned { get; } = [];

        public override byte[] Rent(int minimumLength)
        {
            var size = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)minimumLength);
            Rented.Add(size);
            return new byte[size];
        }

        public override void Return(byte[] array, bool clearArray = false) => Returned.Add(array.Length);
    }
}
