using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using MeshGuard.Proxy.Transport.Http2;

namespace MeshGuard.Proxy.Tests.Transport.Http2;

/// <summary>
/// The sidecar's HTTP/2 client against a peer that writes whatever frames each test scripts: what a broken or hostile
/// peer sidecar could send. Each case ends in a failed stream or connection, never in an answer the app would take;
/// and where a request's task goes on depends only on how its answer arrived.
/// </summary>
public sealed class ScriptedHttp2PeerTests
{
    private static readonly Action<int, HpackEncoder, IBufferWriter<byte>> Get = static (_, encoder, block) =>
    {
        encoder.WriteField(block, ":method", "GET", HpackIndexing.Index);
        encoder.WriteField(block, ":scheme", "https", HpackIndexing.Index);
        encoder.WriteField(block, ":authority", "orders", HpackIndexing.Index);
        encoder.WriteField(block, ":path", "/", HpackIndexing.NoIndex);
    };

    /// <summary>A listening peer; <paramref name="script"/> runs once the client's preface and settings were read and the peer's settings sent.</summary>
    private static async Task<(Http2ClientConnection Client, Task Peer)> StartAsync(Func<NetworkStream, Task> script)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var peer = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync();
            listener.Stop();
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            var preface = new byte[24];
            await stream.ReadExactlyAsync(preface);
            await ReadFrameAsync(stream); // the client's SETTINGS
            await WriteFrameAsync(stream, Http2FrameType.Settings, 0, 0, []);
            await script(stream);
        });
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        var client = await Http2ClientConnection.OpenAsync(new NetworkStream(socket, ownsSocket: true), CancellationToken.None);
        return (client, peer);
    }

    private static async Task<(Http2FrameType Type, byte Flags, int StreamId, byte[] Payload)> ReadFrameAsync(NetworkStream stream)
    {
        var head = new byte[Http2Frame.HeaderLength];
        await stream.ReadExactlyAsync(head);
        var (length, type, flags, id) = Http2Frame.ReadHeader(head);
        var payload = new byte[length];
        await stream.ReadExactlyAsync(payload);
        return (type, flags, id, payload);
    }

    /// <summary>Reads frames until one of <paramref name="type"/> comes.</summary>
    private static async Task<(Http2FrameType Type, byte Flags, int StreamId, byte[] Payload)> ReadUntilAsync(NetworkStream stream, Http2FrameType type)
    {
        while (true)
        {
            var frame = await ReadFrameAsync(stream);
            if (frame.Type == type)
            {
                return frame;
            }
        }
    }

    private static async Task WriteFrameAsync(NetworkStream stream, Http2FrameType type, byte flags, int streamId, byte[] payload) =>
        await stream.WriteAsync(FrameOctets(type, flags, streamId, payload));

    private static byte[] FrameOctets(Http2FrameType type, byte flags, int streamId, byte[] payload)
    {
        var frame = new byte[Http2Frame.HeaderLength + payload.Length];
        Http2Frame.WriteHeader(frame, payload.Length, type, flags, streamId);
        payload.CopyTo(frame, Http2Frame.HeaderLength);
        return frame;
    }

    // :status 200 from the static table.
    private static readonly byte[] Status200 = [0x88];

    [Fact]
    public async Task APeerThatSendsPastAStreamsWindowHasTheStreamResetAndTheBodyFails()
    {
        var (client, peer) = await StartAsync(async stream =>
        {
            var request = await ReadUntilAsync(stream, Http2FrameType.Headers);
            await WriteFrameAsync(stream, Http2FrameType.Headers, Http2Frame.EndHeaders, request.StreamId, Status200);
            // 300 KiB while the window is 256 KiB and nothing was read.
            for (var i = 0; i < 20; i++)
            {
                await WriteFrameAsync(stream, Http2FrameType.Data, 0, request.StreamId, new byte[15 * 1024]);
            }
            var reset = await ReadUntilAsync(stream, Http2FrameType.RstStream);
            Assert.Equal((uint)Http2ErrorCode.FlowControlError, BinaryPrimitives.ReadUInt32BigEndian(reset.Payload));
        });
        await using (client)
        {
            var answer = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
            await answer.ReadHeadAsync();
            await peer.WaitAsync(TimeSpan.FromSeconds(10));
            var failure = await Assert.ThrowsAsync<Http2StreamException>(() => answer.ReadToEndAsync());
            Assert.Equal(Http2ErrorCode.FlowControlError, failure.Code);
        }
    }

    [Fact]
    public async Task AStreamObjectServesANewStreamOnlyWhenFramesForItsOldOneCanNoLongerReachIt()
    {
        var firstReleased = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var readerPassedOn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var (client, peer) = await StartAsync(async stream =>
        {
            var first = await ReadUntilAsync(stream, Http2FrameType.Headers);
            await WriteFrameAsync(stream, Http2FrameType.Headers, Http2Frame.EndHeaders, first.StreamId, Status200);
            await WriteFrameAsync(stream, Http2FrameType.Data, Http2Frame.EndStream, first.StreamId, "one"u8.ToArray());
            await firstReleased.Task;
            // Two pings, one after the other: the second is answered only after the reader went on from the first.
            for (var i = 0; i < 2; i++)
            {
                await WriteFrameAsync(stream, Http2FrameType.Ping, 0, 0, new byte[8]);
                await ReadUntilAsync(stream, Http2FrameType.Ping);
            }
            readerPassedOn.SetResult();
            var second = await ReadUntilAsync(stream, Http2FrameType.Headers);
            // A late frame for the first stream, which ended: it must reach nothing, least of all the stream now
            // served by the same object.
            await WriteFrameAsync(stream, Http2FrameType.Data, 0, first.StreamId, "stale"u8.ToArray());
            await WriteFrameAsync(stream, Http2FrameType.Headers, Http2Frame.EndHeaders, second.StreamId, Status200);
            await WriteFrameAsync(stream, Http2FrameType.Data, Http2Frame.EndStream, second.StreamId, "two"u8.ToArray());
        });
        await using (client)
        {
            var first = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
            Assert.Equal("one", await ReadAnswerAsync(first));
            first.Release();
            firstReleased.SetResult();
            await readerPassedOn.Task.WaitAsync(TimeSpan.FromSeconds(10));

            var second = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
            Assert.Same(first, second);
            Assert.Equal(3, second.Id);
            Assert.Equal("two", await ReadAnswerAsync(second));
            second.Release(reusable: false);
            await peer.WaitAsync(TimeSpan.FromSeconds(10));
        }

        static async Task<string> ReadAnswerAsync(Http2ClientStream stream)
        {
            await stream.ReadHeadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            return System.Text.Encoding.ASCII.GetString(await stream.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(10)));
        }
    }

    [Fact]
    public async Task AStreamAboveAGoAwaysLastIdFailsAsNotProcessed()
    {
        var (client, peer) = await StartAsync(async stream =>
        {
            await ReadUntilAsync(stream, Http2FrameType.Headers);
            await WriteFrameAsync(stream, Http2FrameType.GoAway, 0, 0, new byte[8]);
            await Task.Delay(200);
        });
        await using (client)
        {
            var answer = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
            var failure = await Assert.ThrowsAsync<Http2StreamException>(() => answer.ReadHeadAsync().AsTask());
            Assert.True(failure.NotProcessed);
            Assert.True(client.IsClosing);
            Assert.Null(client.TryOpenStream(Get, 0, endStream: true, moreToCome: false));
            await peer;
        }
    }

    [Fact]
    public async Task ARefusedStreamFailsAsNotProcessedAndTheConnectionGoesOn()
    {
        var (client, peer) = await StartAsync(async stream =>
        {
            var first = await ReadUntilAsync(stream, Http2FrameType.Headers);
            var code = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(code, (uint)Http2ErrorCode.RefusedStream);
            await WriteFrameAsync(stream, Http2FrameType.RstStream, 0, first.StreamId, code);
            var second = await ReadUntilAsync(stream, Http2FrameType.Headers);
            await WriteFrameAsync(stream, Http2FrameType.Headers, Http2Frame.EndHeaders | Http2Frame.EndStream, second.StreamId, Status200);
        });
        await using (client)
        {
            var refused = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
            var failure = await Assert.ThrowsAsync<Http2StreamException>(() => refused.ReadHeadAsync().AsTask());
            Assert.True(failure.NotProcessed);
            var answered = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
            await answered.ReadHeadAsync();
            Assert.Equal(200, answered.Status);
            await peer;
        }
    }

    [Fact]
    public async Task AStreamRefusedToCalmThisSideDownRetiresTheConnectionAndItsOtherStreamsGoOn()
    {
        // Kestrel's answer to a client whose reset streams it still works on: ENHANCE_YOUR_CALM on each new stream, then
        // the whole connection. After the first, the connection takes no new stream, and one already open is answered.
        var (client, peer) = await StartAsync(async stream =>
        {
            var first = await ReadUntilAsync(stream, Http2FrameType.Headers);
            var second = await ReadUntilAsync(stream, Http2FrameType.Headers);
            var code = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(code, (uint)Http2ErrorCode.EnhanceYourCalm);
            await WriteFrameAsync(stream, Http2FrameType.RstStream, 0, second.StreamId, code);
            await Task.Delay(100);
            await WriteFrameAsync(stream, Http2FrameType.Headers, Http2Frame.EndHeaders | Http2Frame.EndStream, first.StreamId, Status200);
        });
        await using (client)
        {
            var inFlight = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
            var calmed = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
            var failure = await Assert.ThrowsAsync<Http2StreamException>(() => calmed.ReadHeadAsync().AsTask());
            Assert.Equal(Http2ErrorCode.EnhanceYourCalm, failure.Code);
            Assert.True(client.IsClosing);
            Assert.Null(client.TryOpenStream(Get, 0, endStream: true, moreToCome: false));
            await inFlight.ReadHeadAsync();
            Assert.Equal(200, inFlight.Status);
            await peer;
        }
    }

    [Theory]
    [InlineData("push", "a PUSH_PROMISE")]
    [InlineData("oversized", "a frame above 16 KiB")]
    [InlineData("bad-hpack", "a header block that does not decode")]
    [InlineData("unopened", "a frame on a stream the client never opened")]
    public async Task AProtocolViolationEndsTheConnectionWithGoAwayAndFailsItsStreams(string violation, string what)
    {
        var (client, peer) = await StartAsync(async stream =>
        {
            var request = await ReadUntilAsync(stream, Http2FrameType.Headers);
            switch (violation)
            {
                case "push":
                    await WriteFrameAsync(stream, Http2FrameType.PushPromise, Http2Frame.EndHeaders, request.StreamId, [0, 0, 0, 2, 0x82]);
                    break;
                case "oversized":
                    await WriteFrameAsync(stream, Http2FrameType.Headers, Http2Frame.EndHeaders, request.StreamId, new byte[Http2Frame.DefaultMaxFrameSize + 1]);
                    break;
                case "bad-hpack":
                    await WriteFrameAsync(stream, Http2FrameType.Headers, Http2Frame.EndHeaders, request.StreamId, [0x80]);
                    break;
                default:
                    await WriteFrameAsync(stream, Http2FrameType.Headers, Http2Frame.EndHeaders, request.StreamId + 2, Status200);
                    break;
            }
            await ReadUntilAsync(stream, Http2FrameType.GoAway);
        });
        await using (client)
        {
            var answer = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
            await Assert.ThrowsAsync<Http2StreamException>(() => answer.ReadHeadAsync().AsTask());
            await peer.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.True(client.IsClosing, what);
        }
    }

    [Fact]
    public async Task AnInformationalAnswerIsSkippedAndTheFinalOneDelivered()
    {
        var (client, peer) = await StartAsync(async stream =>
        {
            var request = await ReadUntilAsync(stream, Http2FrameType.Headers);
            // :status 103 as a literal, then :status 204 (static index 9) with END_STREAM.
            await WriteFrameAsync(stream, Http2FrameType.Headers, Http2Frame.EndHeaders, request.StreamId, [0x08, 0x03, (byte)'1', (byte)'0', (byte)'3']);
            await WriteFrameAsync(stream, Http2FrameType.Headers, Http2Frame.EndHeaders | Http2Frame.EndStream, request.StreamId, [0x89]);
        });
        await using (client)
        {
            var answer = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
            await answer.ReadHeadAsync();
            Assert.Equal(204, answer.Status);
            await peer;
        }
    }

    [Fact]
    public async Task AnAnswerWholeInOneReadGoesOnOnTheReaderAndOneStillArrivingOnTheThreadPool()
    {
        var (client, peer) = await StartAsync(async stream =>
        {
            // Odd requests: HEADERS and the last DATA in one write (one read for the client); even ones: HEADERS alone
            // and the DATA a moment later. Until the client resets a stream to say it has seen enough.
            for (var n = 1; ; n++)
            {
                var frame = await ReadFrameAsync(stream);
                while (frame.Type is not (Http2FrameType.Headers or Http2FrameType.RstStream))
                {
                    frame = await ReadFrameAsync(stream);
                }
                if (frame.Type == Http2FrameType.RstStream)
                {
                    return;
                }
                // A moment before answering: the client's task is waiting on the head by then. Answered at once, the head
                // could settle between the test's look at it and its await (seen in a loaded gate run), and the task went
                // on on the test's own thread or the pool, telling nothing of where the reader hands it on.
                await Task.Delay(50);
                if (n % 2 == 1)
                {
                    await stream.WriteAsync(FrameOctets(Http2FrameType.Headers, Http2Frame.EndHeaders, frame.StreamId, Status200)
                        .Concat(FrameOctets(Http2FrameType.Data, Http2Frame.EndStream, frame.StreamId, "ok"u8.ToArray())).ToArray());
                }
                else
                {
                    await WriteFrameAsync(stream, Http2FrameType.Headers, Http2Frame.EndHeaders, frame.StreamId, Status200);
                    await Task.Delay(100);
                    await WriteFrameAsync(stream, Http2FrameType.Data, Http2Frame.EndStream, frame.StreamId, "ok"u8.ToArray());
                }
            }
        });
        await using (client)
        {
            // Only an await that had to wait shows where the task went on: a head that was in before it is retried, and so
            // is one that settled between the look and the await (the task then went on on this thread, seen in a loaded
            // gate run where the test's thread stood still past the peer's 50 ms).
            string? wholeStack = null, arrivingStack = null;
            for (var attempt = 0; attempt < 20 && (wholeStack is null || arrivingStack is null); attempt++)
            {
                var whole = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
                var wholeHead = whole.ReadHeadAsync();
                var waited = !wholeHead.IsCompleted;
                var thread = Environment.CurrentManagedThreadId;
                await wholeHead;
                if (waited && Environment.CurrentManagedThreadId != thread)
                {
                    wholeStack ??= Environment.StackTrace;
                }
                Assert.Equal("ok", System.Text.Encoding.ASCII.GetString(await whole.ReadToEndAsync()));
                whole.Release();
                var arriving = client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!;
                var arrivingHead = arriving.ReadHeadAsync();
                waited = !arrivingHead.IsCompleted;
                thread = Environment.CurrentManagedThreadId;
                await arrivingHead;
                if (waited && Environment.CurrentManagedThreadId != thread)
                {
                    arrivingStack ??= Environment.StackTrace;
                }
                Assert.Equal("ok", System.Text.Encoding.ASCII.GetString(await arriving.ReadToEndAsync()));
                arriving.Release();
            }
            Assert.NotNull(wholeStack);
            Assert.NotNull(arrivingStack);
            Assert.Contains("Http2ClientConnection.ReadLoopAsync", wholeStack, StringComparison.Ordinal);
            Assert.DoesNotContain("Http2ClientConnection.ReadLoopAsync", arrivingStack, StringComparison.Ordinal);
            client.TryOpenStream(Get, 0, endStream: true, moreToCome: false)!.Reset();
            await peer;
        }
    }
}
