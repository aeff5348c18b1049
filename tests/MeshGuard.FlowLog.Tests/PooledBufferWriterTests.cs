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
}
