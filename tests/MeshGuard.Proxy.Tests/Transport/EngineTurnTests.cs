using System.Collections.Concurrent;
using System.Net.Sockets;
using MeshGuard.Proxy.Transport;

namespace MeshGuard.Proxy.Tests.Transport;

public sealed class EngineTurnTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private sealed class Job(Action run) : IThreadPoolWorkItem
    {
        public void Execute() => run();
    }

    [Fact]
    public void EveryJobStartedFromManyThreadsRunsOnceAndInTheOrderItsThreadStartedIt()
    {
        // Four producers race the loop's turns (each turn takes what was queued before it, and jobs queued meanwhile
        // signal the next): every job runs exactly once, and each producer's jobs in the order it started them.
        const int Producers = 4, PerProducer = 25_000;
        using var turn = new EngineTurn();
        var ran = new ConcurrentQueue<(int Producer, int Seq)>();
        using var done = new CountdownEvent(Producers * PerProducer);
        var threads = Enumerable.Range(0, Producers).Select(producer => new Thread(() =>
        {
            for (var seq = 0; seq < PerProducer; seq++)
            {
                var job = (producer, seq);
                turn.Start(new Job(() =>
                {
                    ran.Enqueue(job);
                    done.Signal();
                }));
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.True(done.Wait(Patience), $"{done.CurrentCount} jobs never ran");
        var next = new int[Producers];
        foreach (var (producer, seq) in ran)
        {
            Assert.Equal(next[producer], seq);
            next[producer]++;
        }
        Assert.All(next, count => Assert.Equal(PerProducer, count));
    }

    [Fact]
    public void AJobStartedByARunningJobRunsInALaterTurn()
    {
        using var turn = new EngineTurn();
        using var second = new ManualResetEventSlim();
        var firstDone = false;
        turn.Start(new Job(() =>
        {
            turn.Start(new Job(() =>
            {
                Assert.True(Volatile.Read(ref firstDone));
                second.Set();
            }));
            Volatile.Write(ref firstDone, true);
        }));
        Assert.True(second.Wait(Patience));
    }

    [Fact]
    public void JobsStartedAfterTheTurnClosedStillRun()
    {
        var turn = new EngineTurn();
        turn.Dispose();
        using var ran = new CountdownEvent(3);
        for (var i = 0; i < 3; i++)
        {
            turn.Start(new Job(() => ran.Signal()));
        }
        Assert.True(ran.Wait(Patience));
    }

    [Fact]
    public void NoOtherSocketCanSignalTheTurn()
    {
        // The signal socket is connected to itself: another process in the pod that found its abstract address (it
        // is listed in /proc/net/unix) is refused by the kernel and cannot make the engine spin.
        using var turn = new EngineTurn();
        using var stranger = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        var refused = Assert.Throws<SocketException>(() => stranger.SendTo([1], turn.SignalAddress));
        Assert.Equal(SocketError.AccessDenied, refused.SocketErrorCode);
    }
}
