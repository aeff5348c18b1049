using MeshGuard.Proxy.Transport.Http2;

namespace MeshGuard.Proxy.Tests.Transport.Http2;

public sealed class Http2FrameQueueTests
{
    /// <summary>A transport whose first write stays under way until the test lets it finish.</summary>
    private sealed class HeldTransport : MemoryStream
    {
        public readonly TaskCompletionSource FirstWriteStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly TaskCompletionSource ReleaseFirstWrite = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _writes;

        public int Writes => Volatile.Read(ref _writes);

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Interlocked.Increment(ref _writes) == 1)
            {
                FirstWriteStarted.SetResult();
                await ReleaseFirstWrite.Task;
            }
            lock (this)
            {
                Write(buffer.Span);
            }
        }
    }

    private static List<Http2FrameType> FramesIn(byte[] written)
    {
        var types = new List<Http2FrameType>();
        for (var at = 0; at < written.Length;)
        {
            var (length, type, _, _) = Http2Frame.ReadHeader(written.AsSpan(at, Http2Frame.HeaderLength));
            types.Add(type);
            at += Http2Frame.HeaderLength + length;
        }
        return types;
    }

    [Fact]
    public async Task TheLastFrameWaitsForTheWriteUnderWayAndWhatQueuedBehindItIsDropped()
    {
        using var transport = new HeldTransport();
        using var queue = new Http2FrameQueue(transport, _ => { });
        queue.Frame(Http2FrameType.Headers, Http2Frame.EndHeaders, 1, [0x82]);
        var underWay = queue.FlushAsync();
        await transport.FirstWriteStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));
        queue.Frame(Http2FrameType.Settings, Http2Frame.Ack, 0, []);
        queue.Flush();

        var last = queue.WriteLastAsync(Http2FrameType.GoAway, new byte[8]);
        Assert.False(last.IsCompleted);
        transport.ReleaseFirstWrite.SetResult();
        await Task.WhenAll(underWay, last).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal([Http2FrameType.Headers, Http2FrameType.GoAway], FramesIn(transport.ToArray()));
        queue.Frame(Http2FrameType.Ping, 0, 0, new byte[8]);
        await queue.FlushAsync();
        Assert.Equal(2, FramesIn(transport.ToArray()).Count);
    }

    [Fact]
    public async Task TheLastFrameGoesAtOnceWhenNoWriteIsUnderWay()
    {
        using var transport = new HeldTransport();
        transport.ReleaseFirstWrite.SetResult();
        using var queue = new Http2FrameQueue(transport, _ => { });
        await queue.WriteLastAsync(Http2FrameType.GoAway, new byte[8]).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([Http2FrameType.GoAway], FramesIn(transport.ToArray()));
    }

    [Fact]
    public async Task FramesFlushedSoonOneAfterAnotherGoOutInOneWrite()
    {
        using var transport = new HeldTransport();
        transport.ReleaseFirstWrite.SetResult();
        var started = new List<IThreadPoolWorkItem>();
        using var queue = new Http2FrameQueue(transport, _ => { }, started.Add);
        for (var streamId = 1; streamId <= 7; streamId += 2)
        {
            queue.Frame(Http2FrameType.Headers, Http2Frame.EndHeaders | Http2Frame.EndStream, streamId, [0x82]);
            queue.FlushSoon();
        }
        // One write was started for the four heads, and nothing went out before it ran.
        Assert.Single(started);
        Assert.Empty(transport.ToArray());
        started[0].Execute();
        await WaitForAsync(() => FramesIn(transport.ToArray()).Count == 4);
        Assert.Equal(1, transport.Writes);

        // With the queue written, the next flush starts a write of its own.
        queue.Frame(Http2FrameType.Ping, 0, 0, new byte[8]);
        queue.FlushSoon();
        Assert.Equal(2, started.Count);
        started[1].Execute();
        await WaitForAsync(() => FramesIn(transport.ToArray()).Count == 5);
        Assert.Equal(2, transport.Writes);
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        for (var waited = 0; !condition(); waited += 10)
        {
            Assert.True(waited < 10_000, "the queued frames were not written");
            await Task.Delay(10);
        }
    }
}
