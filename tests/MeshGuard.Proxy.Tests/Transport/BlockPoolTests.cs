using System.Buffers;
using System.IO.Pipelines;
using MeshGuard.Hosting;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.Proxy.Tests.Transport;

public sealed class BlockPoolTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    [Fact]
    public void ABlockGivenBackIsRentedAgainInsteadOfANewOne()
    {
        using var pool = new BlockPool(4096, maxRetained: 8, _time);
        for (var i = 0; i < 100; i++)
        {
            using var owner = pool.Rent();
            Assert.Equal(4096, owner.Memory.Length);
        }
        Assert.Equal(1, pool.Created);
        Assert.Equal(1, pool.Free);
    }

    [Fact]
    public void TheBlockGivenBackLastIsRentedFirstAndATrimReleasesThoseUnusedLongest()
    {
        using var pool = new BlockPool(1024, maxRetained: 64, _time);
        var blocks = Enumerable.Range(0, 8).Select(_ => pool.Rent()).ToList();
        var arrays = blocks.Select(b => b.Memory).ToList();
        blocks.ForEach(b => b.Dispose()); // given back in order: the last one is the warmest
        using (var again = pool.Rent())
        {
            Assert.True(again.Memory.Span == arrays[^1].Span, "the block given back last comes first");
        }
        // Two blocks are used through an interval; the other six wait at the bottom, and the trim takes half of them from there.
        _time.Advance(BlockPool.TrimInterval);
        var (x, y) = (pool.Rent(), pool.Rent());
        y.Dispose();
        x.Dispose();
        _time.Advance(BlockPool.TrimInterval);
        Assert.Equal(5, pool.Free);
        var kept = Enumerable.Range(0, 5).Select(_ => pool.Rent()).ToList();
        Assert.Contains(kept, b => b.Memory.Span == arrays[^1].Span);
        Assert.Contains(kept, b => b.Memory.Span == arrays[^2].Span);
        Assert.DoesNotContain(kept, b => b.Memory.Span == arrays[0].Span);
        kept.ForEach(b => b.Dispose());
    }

    [Fact]
    public void ABlockDisposedTwiceIsNeverHandedToTwoRenters()
    {
        using var pool = new BlockPool(4096, maxRetained: 8, _time);
        var first = pool.Rent();
        first.Dispose();
        first.Dispose();
        var a = pool.Rent();
        var b = pool.Rent();
        a.Memory.Span.Fill(1);
        b.Memory.Span.Fill(2);
        Assert.Equal(1, a.Memory.Span[0]);
        Assert.Equal(2, pool.Created);
    }

    [Fact]
    public void NoMoreThanTheBoundWaitsFreeAfterABurst()
    {
        using var pool = new BlockPool(1024, maxRetained: 4, _time);
        var burst = Enumerable.Range(0, 10).Select(_ => pool.Rent()).ToList();
        burst.ForEach(b => b.Dispose());
        Assert.Equal(10, pool.Created);
        Assert.Equal(4, pool.Free);
    }

    [Fact]
    public void BlocksNoRequestNeededThroughAWholeIntervalAreReleasedHalfAtATime()
    {
        using var pool = new BlockPool(1024, maxRetained: 64, _time);
        var burst = Enumerable.Range(0, 16).Select(_ => pool.Rent()).ToList();
        burst.ForEach(b => b.Dispose());
        Assert.Equal(16, pool.Free);

        _time.Advance(BlockPool.TrimInterval); // the burst's interval: its blocks were in use
        Assert.Equal(16, pool.Free);
        _time.Advance(BlockPool.TrimInterval); // a whole interval with all sixteen free
        Assert.Equal(8, pool.Free);
        _time.Advance(BlockPool.TrimInterval);
        Assert.Equal(4, pool.Free);

        // Blocks in use through an interval are kept: two rented and given back each interval, two stay.
        for (var i = 0; i < 6; i++)
        {
            var (x, y) = (pool.Rent(), pool.Rent());
            x.Dispose();
            y.Dispose();
            _time.Advance(BlockPool.TrimInterval);
        }
        Assert.InRange(pool.Free, 2, 3);
    }

    [Fact]
    public void APipeOnThePoolCarriesMoreThanOneBlockAndGivesEveryBlockBack()
    {
        using var pool = new BlockPool(4096, maxRetained: 64, _time);
        var pipe = new Pipe(new PipeOptions(pool, pauseWriterThreshold: 0, resumeWriterThreshold: 0, minimumSegmentSize: pool.BlockSize, useSynchronizationContext: false));
        var data = Enumerable.Range(0, 20_000).Select(i => (byte)i).ToArray();
        pipe.Writer.Write(data);
        pipe.Writer.Complete();
        Assert.True(pipe.Reader.TryRead(out var result));
        Assert.Equal(data, result.Buffer.ToArray());
        pipe.Reader.AdvanceTo(result.Buffer.End);
        pipe.Reader.Complete();
        Assert.Equal(pool.Created, pool.Free);
        Assert.InRange(pool.Created, 5, 6);
    }
}
