using MeshGuard.FlowLog;
using MeshGuard.Proxy.FlowLog;

namespace MeshGuard.Proxy.Tests.FlowLog;

/// <summary>The lock-free ring between request handlers and the flow-log writer.</summary>
public sealed class FlowRecordQueueTests
{
    private static FlowRecord Flow(int status) => new() { Status = status, Method = "GET" };

    [Fact]
    public void RecordsComeOutInTheOrderTheyWentInAcrossManyLapsOfTheRing()
    {
        var queue = new FlowRecordQueue(3);
        var next = 0;
        for (var lap = 0; lap < 10; lap++)
        {
            Assert.True(queue.TryEnqueue(Flow(lap * 2)));
            Assert.True(queue.TryEnqueue(Flow(lap * 2 + 1)));
            for (var i = 0; i < 2; i++)
            {
                Assert.True(queue.TryDequeue(out var record));
                Assert.Equal(next++, record.Status);
            }
        }
        Assert.False(queue.TryDequeue(out _));
    }

    [Fact]
    public void AFullRingRefusesAtOnceAndAcceptsAgainOnceTheWriterHasReadOne()
    {
        var queue = new FlowRecordQueue(4);
        for (var i = 0; i < 4; i++)
        {
            Assert.True(queue.TryEnqueue(Flow(i)));
        }
        Assert.False(queue.TryEnqueue(Flow(99)));
        Assert.True(queue.TryDequeue(out var first));
        Assert.Equal(0, first.Status);
        Assert.True(queue.TryEnqueue(Flow(4)));
        Assert.False(queue.TryEnqueue(Flow(100)));
        var seen = new List<int>();
        while (queue.TryDequeue(out var record))
        {
            seen.Add(record.Status);
        }
        Assert.Equal([1, 2, 3, 4], seen);
    }

    [Fact]
    public async Task ConcurrentProducersLoseNothingTheyWereToldWasQueuedAndDuplicateNothing()
    {
        const int Producers = 4;
        const int PerProducer = 50_000;
        var queue = new FlowRecordQueue(256);
        var accepted = new long[Producers];
        var seen = new int[Producers * PerProducer];
        using var done = new CancellationTokenSource();
        var consumer = Task.Run(() =>
        {
            var count = 0L;
            while (true)
            {
                if (queue.TryDequeue(out var record))
                {
                    seen[record.Status]++;
                    count++;
                }
                else if (done.IsCancellationRequested)
                {
                    // Producers have finished: whatever is left is already published.
                    while (queue.TryDequeue(out record))
                    {
                        seen[record.Status]++;
                        count++;
                    }
                    return count;
                }
            }
        });
        var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(() =>
        {
            for (var i = 0; i < PerProducer; i++)
            {
                if (queue.TryEnqueue(Flow(p * PerProducer + i)))
                {
                    accepted[p]++;
                }
            }
        })).ToArray();
        await Task.WhenAll(producers);
        done.Cancel();
        var consumed = await consumer;

        Assert.Equal(accepted.Sum(), consumed);
        Assert.All(seen, n => Assert.InRange(n, 0, 1));
        Assert.Equal(consumed, seen.Count(n => n == 1));
    }

    [Fact]
    public async Task AWriterWaitingForARecordIsWokenByTheFirstOneQueuedLongBeforeItsLimit()
    {
        var queue = new FlowRecordQueue(8);
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var waiting = queue.WaitForRecordAsync(TimeSpan.FromSeconds(5), clock, CancellationToken.None);
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted, "the writer stopped waiting with nothing queued and no time passed");

        await Task.Run(() => queue.TryEnqueue(Flow(200)));

        // The fake clock never moves: only the record can end the wait.
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(queue.TryDequeue(out var record));
        Assert.Equal(200, record.Status);
    }

    [Fact]
    public async Task AWriterWaitingWithNothingQueuedGoesOnOnceItsLimitHasPassed()
    {
        var queue = new FlowRecordQueue(8);
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var waiting = queue.WaitForRecordAsync(TimeSpan.FromSeconds(5), clock, CancellationToken.None);

        clock.Advance(TimeSpan.FromSeconds(4.9));
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted, "the writer stopped waiting before its limit");
        clock.Advance(TimeSpan.FromSeconds(0.2));
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(queue.TryDequeue(out _));
    }

    [Fact]
    public async Task NoRecordQueuedWhileTheWriterGoesToWaitIsLeftWaitingForTheClock()
    {
        // Producer and writer race on every round: the writer must never sleep through a record queued meanwhile.
        var queue = new FlowRecordQueue(8);
        for (var round = 0; round < 2000; round++)
        {
            var producer = Task.Run(() => queue.TryEnqueue(Flow(round)));
            await queue.WaitForRecordAsync(TimeSpan.FromSeconds(30), TimeProvider.System, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
            await producer;
            Assert.True(queue.TryDequeue(out var record), $"round {round}: woken without a record");
            Assert.Equal(round, record.Status);
        }
    }
}
