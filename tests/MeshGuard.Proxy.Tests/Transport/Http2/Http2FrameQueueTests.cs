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
}
