using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http2;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshGuard.Proxy.Tests.Transport.Http2;

/// <summary>
/// The inbound sidecar's own HTTP/2 server on loopback (cleartext; TLS is below it and not its concern), against .NET's
/// HTTP/2 client, the sidecar's own client, and a peer that writes whatever frames a test scripts.
/// </summary>
public sealed class Http2ServerConnectionTests : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly List<Task> _served = [];
    private readonly CancellationTokenSource _stop = new();
    private RequestDelegate _application = static _ => Task.CompletedTask;
    private int _applicationCalls;
    private WriteRecordingStream? _recording;

    public Http2ServerConnectionTests()
    {
        _listener.Start();
        _ = AcceptLoopAsync();
    }

    private static readonly AsyncLocal<string?> ConnectionScope = new();
    private static readonly AsyncLocal<string?> RequestScope = new();

    private int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    private Http2ServerLimits Limits { get; set; } = new(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(130));

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;
            }
            socket.NoDelay = true;
            var stream = new NetworkStream(socket, ownsSocket: true);
            var connection = new LoopbackConnection(stream, socket);
            Stream transport = _recording is { } recording ? recording.Over(stream) : stream;
            var server = new Http2ServerConnection(connection, transport, async context =>
            {
                Interlocked.Increment(ref _applicationCalls);
                await _application(context);
                return true;
            }, Limits, NullLogger.Instance);
            lock (_served)
            {
                _served.Add(Task.Run(async () =>
                {
                    // As the host's connection scope would be: a value the connection's caller holds.
                    ConnectionScope.Value = "connection " + connection.ConnectionId;
                    using (server)
                    {
                        await server.RunAsync();
                    }
                    await connection.DisposeAsync();
                }));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        _stop.Dispose();
        await Task.CompletedTask;
    }

    private static HttpClient NewClient() => new(new SocketsHttpHandler { EnableMultipleHttp2Connections = false })
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(20),
    };

    private Uri Url(string path) => new($"http://127.0.0.1:{Port}{path}");

    [Fact]
    public async Task ARequestReachesTheApplicationAsSentAndItsAnswerHeadBodyAndTrailersComeBack()
    {
        string? seen = null;
        _application = async context =>
        {
            var request = context.Request;
            seen = $"{request.Method} {request.Path}{request.QueryString} {context.Features.Get<IHttpRequestFeature>()!.RawTarget} host={request.Host} x={request.Headers["x-test"]} proto={request.Protocol}";
            context.Response.StatusCode = 201;
            context.Response.Headers["x-answer"] = "yes";
            context.Response.AppendTrailer("x-trailer", "done");
            await context.Response.WriteAsync("hello over h2");
        };
        using var client = NewClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, Url("/orders/7?q=1")) { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        request.Headers.Add("x-test", "value");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("hello over h2", await response.Content.ReadAsStringAsync());
        Assert.Equal("yes", response.Headers.GetValues("x-answer").Single());
        Assert.Equal("done", response.TrailingHeaders.GetValues("x-trailer").Single());
        Assert.Equal($"GET /orders/7?q=1 /orders/7?q=1 host=127.0.0.1:{Port} x=value proto=HTTP/2", seen);
    }

    [Fact]
    public async Task AnAnswersLastBodyOctetsAndItsTrailersLeaveInOneWrite()
    {
        _recording = new WriteRecordingStream();
        _application = context =>
        {
            // As the legs end an answer with trailers: the last piece written, not flushed, then the trailers.
            context.Response.Headers.ContentType = "application/grpc";
            context.Response.BodyWriter.Write("\0\0\0\0\u0002ok"u8);
            context.Response.AppendTrailer("grpc-status", "0");
            return Task.CompletedTask;
        };
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        await peer.SendHeadersAsync(1, Pairs([":method", "POST", ":scheme", "http", ":path", "/pkg.Svc/Call", ":authority", "orders"]), endStream: true);
        var trailers = await peer.ReadUntilAsync(Http2FrameType.Headers);
        if ((trailers.Flags & Http2Frame.EndStream) == 0)
        {
            trailers = await peer.ReadUntilAsync(Http2FrameType.Headers);
        }
        Assert.Equal(Http2Frame.EndStream, trailers.Flags & Http2Frame.EndStream);
        var answer = Assert.Single(_recording.Writes, write => FindFrame(write, Http2FrameType.Data) is not null);
        var frames = Frames(answer);
        Assert.Equal([Http2FrameType.Headers, Http2FrameType.Data, Http2FrameType.Headers], frames.Where(f => f.StreamId == 1).Select(f => f.Type));
        Assert.Equal(Http2Frame.EndStream, frames[^1].Flags & Http2Frame.EndStream);
    }

    [Fact]
    public async Task AnswersSendingAtOnceHoldTheConnectionsQueueNearItsHighWaterMark()
    {
        // Each write takes what was queued; a slow transport lets the eight answers queue behind it. Each may add a frame
        // past the mark; before, each added its whole flush (64 KiB, within its stream's window) and writes of half a
        // MiB went out (and the queue's arrays grew to a MiB).
        _recording = new WriteRecordingStream(writeDelay: TimeSpan.FromMilliseconds(20));
        var body = new byte[256 * 1024];
        Random.Shared.NextBytes(body);
        _application = async context =>
        {
            context.Response.ContentLength = body.Length;
            for (var at = 0; at < body.Length; at += 64 * 1024)
            {
                await context.Response.BodyWriter.WriteAsync(body.AsMemory(at, 64 * 1024));
            }
        };
        using var client = NewClient();

        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => client.GetByteArrayAsync(Url($"/big/{i}"))));

        Assert.All(answers, answer => Assert.Equal(body, answer));
        var largest = _recording.Writes.Max(write => write.Length);
        Assert.True(largest <= Http2FrameQueue.HighWater + 8 * (Http2Frame.HeaderLength + Http2Frame.DefaultMaxFrameSize) + 4096, $"a write of {largest} octets");
    }

    private static List<(Http2FrameType Type, byte Flags, int StreamId)> Frames(byte[] octets)
    {
        var frames = new List<(Http2FrameType, byte, int)>();
        for (var at = 0; at + Http2Frame.HeaderLength <= octets.Length;)
        {
            var (length, type, flags, id) = Http2Frame.ReadHeader(octets.AsSpan(at));
            frames.Add((type, flags, id));
            at += Http2Frame.HeaderLength + length;
        }
        return frames;
    }

    /// <summary>The server's writes, each as it was handed to the transport (each held for <paramref name="writeDelay"/> first, as a slow peer would).</summary>
    private sealed class WriteRecordingStream(TimeSpan writeDelay = default)
    {
        private readonly List<byte[]> _writes = [];

        public IReadOnlyList<byte[]> Writes
        {
            get
            {
                lock (_writes)
                {
                    return [.. _writes];
                }
            }
        }

        public TimeSpan WriteDelay => writeDelay;

        public Stream Over(Stream inner) => new Recorder(inner, this);

        private void Record(ReadOnlySpan<byte> octets)
        {
            lock (_writes)
            {
                _writes.Add(octets.ToArray());
            }
        }

        private sealed class Recorder(Stream inner, WriteRecordingStream owner) : Stream
        {
            public override bool CanRead => true;

            public override bool CanSeek => false;

            public override bool CanWrite => true;

            public override long Length => throw new NotSupportedException();

            public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

            public override void Flush() => inner.Flush();

            public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

            public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

            public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

            public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);

            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

            public override void SetLength(long value) => throw new NotSupportedException();

            public override void Write(byte[] buffer, int offset, int count)
            {
                owner.Record(buffer.AsSpan(offset, count));
                inner.Write(buffer, offset, count);
            }

            public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
            {
                owner.Record(buffer.Span);
                if (owner.WriteDelay > TimeSpan.Zero)
                {
                    await Task.Delay(owner.WriteDelay, cancellationToken);
                }
                await inner.WriteAsync(buffer, cancellationToken);
            }

            public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
                WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

            protected override void Dispose(bool disposing)
            {
                if (disposing)
                {
                    inner.Dispose();
                }
                base.Dispose(disposing);
            }
        }
    }

    [Fact]
    public async Task AHandlerSeesNeitherTheConnectionsNorAnEarlierRequestsAsyncLocalValues()
    {
        var seen = new List<string>();
        _application = async context =>
        {
            lock (seen)
            {
                seen.Add($"{ConnectionScope.Value ?? "-"}/{RequestScope.Value ?? "-"}");
            }
            RequestScope.Value = "request " + context.Request.Path;
            await Task.Yield();
            context.Response.StatusCode = 204;
        };
        using var client = NewClient();
        for (var i = 0; i < 3; i++)
        {
            using var response = await client.GetAsync(Url("/r" + i));
            Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        }
        Assert.Equal(["-/-", "-/-", "-/-"], seen);
    }

    [Fact]
    public async Task AnUploadAndItsEchoOfFourMebibytesPassWholeThroughTheFlowControlWindows()
    {
        _application = async context =>
        {
            context.Response.StatusCode = 200;
            var reader = context.Request.BodyReader;
            while (true)
            {
                var result = await reader.ReadAsync();
                foreach (var segment in result.Buffer)
                {
                    await context.Response.Body.WriteAsync(segment);
                }
                reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    return;
                }
            }
        };
        var body = new byte[4 * 1024 * 1024];
        new Random(7).NextBytes(body);
        await using var client = await OpenClientAsync();
        var stream = client.TryOpenStream(static (_, encoder, block) =>
        {
            encoder.WriteField(block, ":method", "POST", HpackIndexing.Index);
            encoder.WriteField(block, ":scheme", "https", HpackIndexing.Index);
            encoder.WriteField(block, ":authority", "orders", HpackIndexing.Index);
            encoder.WriteField(block, ":path", "/echo", HpackIndexing.NoIndex);
        }, 0, endStream: false, moreToCome: true)!;
        // The upload goes on while the echo is read, as a streaming call's would.
        var upload = Task.Run(async () =>
        {
            for (var at = 0; at < body.Length; at += 100_000)
            {
                var piece = body.AsMemory(at, Math.Min(100_000, body.Length - at));
                await stream.SendDataAsync(piece, endStream: at + piece.Length == body.Length, CancellationToken.None);
            }
        });
        await stream.ReadHeadAsync();
        var echoed = new MemoryStream();
        while (true)
        {
            var result = await stream.ReadBodyAsync();
            foreach (var segment in result.Buffer)
            {
                echoed.Write(segment.Span);
            }
            var done = result.IsCompleted;
            stream.Consumed(result);
            if (done)
            {
                break;
            }
        }
        await upload;
        Assert.Equal(200, stream.Status);
        stream.Release();
        Assert.True(body.AsSpan().SequenceEqual(echoed.ToArray()), $"echoed {echoed.Length} octets, not the {body.Length} sent");
    }

    private async Task<Http2ClientConnection> OpenClientAsync()
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, Port);
        return await Http2ClientConnection.OpenAsync(new NetworkStream(socket, ownsSocket: true), CancellationToken.None);
    }

    [Fact]
    public async Task TwoHundredRequestsFromTheSidecarsOwnClientFiftyAtATimeAreEachAnsweredWithTheirOwnBody()
    {
        _application = context =>
        {
            var text = "answer for " + context.Request.Path;
            context.Response.ContentLength = text.Length;
            return context.Response.WriteAsync(text);
        };
        await using var client = await OpenClientAsync();
        using var gate = new SemaphoreSlim(50);
        var answers = await Task.WhenAll(Enumerable.Range(0, 200).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
                return await GetAsync(client, "/item/" + i);
            }
            finally
            {
                gate.Release();
            }
        }));
        for (var i = 0; i < answers.Length; i++)
        {
            Assert.Equal((200, "answer for /item/" + i), answers[i]);
        }
    }

    private static async Task<(int Status, string Body)> GetAsync(Http2ClientConnection client, string path)
    {
        Http2ClientStream? stream;
        while ((stream = client.TryOpenStream(static (p, encoder, block) =>
        {
            encoder.WriteField(block, ":method", "GET", HpackIndexing.Index);
            encoder.WriteField(block, ":scheme", "https", HpackIndexing.Index);
            encoder.WriteField(block, ":authority", "orders", HpackIndexing.Index);
            encoder.WriteField(block, ":path", p, HpackIndexing.NoIndex);
        }, path, endStream: true, moreToCome: false)) is null)
        {
            await Task.Delay(1);
        }
        await stream.ReadHeadAsync();
        var body = new StringBuilder();
        while (true)
        {
            var result = await stream.ReadBodyAsync();
            foreach (var segment in result.Buffer)
            {
                body.Append(Encoding.ASCII.GetString(segment.Span));
            }
            var done = result.IsCompleted;
            stream.Consumed(result);
            if (done)
            {
                break;
            }
        }
        var status = stream.Status;
        stream.Release();
        return (status, body.ToString());
    }

    public static TheoryData<string, string[]> MalformedHeads => new()
    {
        { "a connection-specific field", [":method", "GET", ":scheme", "https", ":path", "/", "connection", "close"] },
        { "transfer-encoding", [":method", "GET", ":scheme", "https", ":path", "/", "transfer-encoding", "chunked"] },
        { "te other than trailers", [":method", "GET", ":scheme", "https", ":path", "/", "te", "gzip"] },
        { "no :path", [":method", "GET", ":scheme", "https"] },
        { "an empty :path", [":method", "GET", ":scheme", "https", ":path", ""] },
        { "a :path not in origin form", [":method", "GET", ":scheme", "https", ":path", "orders/secret"] },
        { "an asterisk outside OPTIONS", [":method", "GET", ":scheme", "https", ":path", "*"] },
        { "a pseudo-field after a field", [":method", "GET", ":scheme", "https", "x-a", "1", ":path", "/"] },
        { "a repeated pseudo-field", [":method", "GET", ":method", "POST", ":scheme", "https", ":path", "/"] },
        { "an unknown pseudo-field", [":method", "GET", ":scheme", "https", ":path", "/", ":xyz", "1"] },
        { ":protocol outside CONNECT", [":method", "GET", ":scheme", "https", ":path", "/", ":protocol", "websocket"] },
        { "a host unlike :authority", [":method", "GET", ":scheme", "https", ":authority", "orders", ":path", "/", "host", "payments"] },
        { "two content-lengths", [":method", "POST", ":scheme", "https", ":path", "/", "content-length", "1", "content-length", "2"] },
    };

    [Theory]
    [MemberData(nameof(MalformedHeads))]
    public async Task AMalformedRequestHeadResetsItsStreamWithProtocolErrorAndNeverReachesTheApplication(string what, string[] fields)
    {
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        await peer.SendHeadersAsync(1, Pairs(fields), endStream: true);
        var reset = await peer.ReadUntilAsync(Http2FrameType.RstStream);
        Assert.True(reset.StreamId == 1, what);
        Assert.Equal(Http2ErrorCode.ProtocolError, (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(reset.Payload));
        // The connection goes on: the next request is answered.
        await peer.SendHeadersAsync(3, Pairs([":method", "GET", ":scheme", "https", ":path", "/ok"]), endStream: true);
        var answer = await peer.ReadUntilAsync(Http2FrameType.Headers);
        Assert.Equal(3, answer.StreamId);
        Assert.Equal(1, _applicationCalls);
    }

    /// <summary>A request head of <paramref name="fields"/> fields (pseudo-fields apart), each of <paramref name="valueLength"/> octets.</summary>
    private static (string, string)[] HeadWith(int fields, int valueLength = 1) =>
        [(":method", "GET"), (":scheme", "https"), (":path", "/wide"), .. Enumerable.Range(0, fields).Select(i => ($"x-f{i:d4}", new string('v', valueLength)))];

    [Fact]
    public async Task ARequestWithMoreFieldsThanTheBoundsIsAnswered431AndTheNextOneUpToThemReachesTheApplication()
    {
        var bound = RequestFieldBounds.MaxFields + RequestFieldBounds.AddedOnTheWay;
        var seen = 0;
        _application = context =>
        {
            seen = context.Request.Headers.Count(static h => h.Key.StartsWith("x-f", StringComparison.Ordinal));
            return Task.CompletedTask;
        };
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        await peer.SendHeadersAsync(1, HeadWith(bound + 1), endStream: true);
        var refused = await peer.ReadUntilAsync(Http2FrameType.Headers);
        Assert.Equal((1, 431), (refused.StreamId, peer.StatusOf(refused.Payload)));
        Assert.Equal(0, Volatile.Read(ref _applicationCalls));
        // The refused block was decoded all the same: the connection's table is in step, and the next request passes.
        await peer.SendHeadersAsync(3, HeadWith(bound), endStream: true);
        var answer = await peer.ReadUntilAsync(Http2FrameType.Headers);
        Assert.Equal((3, 200), (answer.StreamId, peer.StatusOf(answer.Payload)));
        Assert.Equal((1, bound), (Volatile.Read(ref _applicationCalls), seen));
    }

    [Fact]
    public async Task ARequestWhoseFieldsTakeMoreRoomThanTheBoundsIsAnswered431WithoutTheApplication()
    {
        // Four fields of 8.5 KiB each: few fields, but past the 32 KiB (and the 1 KiB a sidecar may add) a field section may take.
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        await peer.SendHeadersAsync(1, HeadWith(4, valueLength: 8_700), endStream: false);
        await peer.SendFrameAsync(Http2FrameType.Data, Http2Frame.EndStream, 1, Encoding.ASCII.GetBytes("a body no one reads"));
        var refused = await peer.ReadUntilAsync(Http2FrameType.Headers);
        Assert.Equal((1, 431), (refused.StreamId, peer.StatusOf(refused.Payload)));
        await peer.SendHeadersAsync(3, HeadWith(3, valueLength: 8_700), endStream: true);
        var answer = await peer.ReadUntilAsync(Http2FrameType.Headers);
        Assert.Equal((3, 200), (answer.StreamId, peer.StatusOf(answer.Payload)));
        Assert.Equal(1, Volatile.Read(ref _applicationCalls));
    }

    [Fact]
    public async Task TrailersBeyondTheFieldBoundsResetTheStream()
    {
        _application = static async context =>
        {
            while (!(await context.Request.BodyReader.ReadAsync()).IsCompleted)
            {
            }
        };
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        await peer.SendHeadersAsync(1, Pairs([":method", "POST", ":scheme", "https", ":path", "/upload"]), endStream: false);
        await peer.SendHeadersAsync(1, [.. HeadWith(RequestFieldBounds.MaxFields + RequestFieldBounds.AddedOnTheWay + 1).Skip(3)], endStream: true);
        var reset = await peer.ReadUntilAsync(Http2FrameType.RstStream);
        Assert.Equal((1, Http2ErrorCode.ProtocolError), (reset.StreamId, (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(reset.Payload)));
    }

    private static (string, string)[] Pairs(string[] flat) => [.. Enumerable.Range(0, flat.Length / 2).Select(i => (flat[2 * i], flat[2 * i + 1]))];

    [Fact]
    public async Task ABodyLongerThanItsContentLengthResetsTheStreamAndTheApplicationsReadFails()
    {
        var failure = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        _application = async context =>
        {
            try
            {
                while (!(await context.Request.BodyReader.ReadAsync()).IsCompleted)
                {
                    // Reads until the body fails.
                }
                failure.TrySetResult("read to the end");
            }
            catch (IOException e)
            {
                failure.TrySetResult("failed: " + e.Message);
            }
        };
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        await peer.SendHeadersAsync(1, Pairs([":method", "POST", ":scheme", "https", ":path", "/", "content-length", "3"]), endStream: false);
        await peer.SendFrameAsync(Http2FrameType.Data, Http2Frame.EndStream, 1, Encoding.ASCII.GetBytes("more than three"));
        var reset = await peer.ReadUntilAsync(Http2FrameType.RstStream);
        Assert.Equal(Http2ErrorCode.ProtocolError, (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(reset.Payload));
        Assert.StartsWith("failed", await failure.Task.WaitAsync(TimeSpan.FromSeconds(10)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task APeersResetCancelsTheRequestTheApplicationIsServing()
    {
        var aborted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _application = async context =>
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                aborted.TrySetResult();
            }
        };
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        await peer.SendHeadersAsync(1, Pairs([":method", "GET", ":scheme", "https", ":path", "/slow"]), endStream: true);
        await Task.Delay(100);
        await peer.SendFrameAsync(Http2FrameType.RstStream, 0, 1, [0, 0, 0, (byte)Http2ErrorCode.Cancel]);
        await aborted.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task StreamsBeyondTheConcurrencyLimitAreRefusedAndNeverReachTheApplication()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _application = _ => release.Task;
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        for (var i = 0; i <= Http2ServerLimits.MaxConcurrentStreams; i++)
        {
            await peer.SendHeadersAsync(1 + 2 * i, Pairs([":method", "GET", ":scheme", "https", ":path", "/hold"]), endStream: true);
        }
        var refused = await peer.ReadUntilAsync(Http2FrameType.RstStream);
        Assert.Equal(1 + 2 * Http2ServerLimits.MaxConcurrentStreams, refused.StreamId);
        Assert.Equal(Http2ErrorCode.RefusedStream, (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(refused.Payload));
        // The accepted ones start after the read that brought them; the refused one never does.
        for (var waited = 0; Volatile.Read(ref _applicationCalls) < Http2ServerLimits.MaxConcurrentStreams && waited < 100; waited++)
        {
            await Task.Delay(50);
        }
        await Task.Delay(100);
        Assert.Equal(Http2ServerLimits.MaxConcurrentStreams, Volatile.Read(ref _applicationCalls));
        release.SetResult();
    }

    [Fact]
    public async Task AStreamThatEndedBothWaysFreesItsPlaceWhileItsHandlerIsStillFinishing()
    {
        // Each handler sends its whole answer (END_STREAM goes with the declared length) and then keeps running, as the
        // inbound handler does while it writes the flow record: the peer already counts the stream as closed.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _application = async context =>
        {
            context.Response.ContentLength = 2;
            await context.Response.WriteAsync("ok");
            await release.Task;
        };
        await using var client = await OpenClientAsync();
        for (var batch = 0; batch < 2; batch++)
        {
            var answers = await Task.WhenAll(Enumerable.Range(0, Http2ServerLimits.MaxConcurrentStreams).Select(i => GetAsync(client, $"/{batch}/{i}")));
            Assert.All(answers, answer => Assert.Equal((200, "ok"), answer));
        }
        Assert.Equal(2 * Http2ServerLimits.MaxConcurrentStreams, Volatile.Read(ref _applicationCalls));
        release.SetResult();
    }

    [Fact]
    public async Task DataPastTheStreamsWindowResetsTheStreamWithFlowControlError()
    {
        _application = _ => Task.Delay(Timeout.Infinite);
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        await peer.SendHeadersAsync(1, Pairs([":method", "POST", ":scheme", "https", ":path", "/"]), endStream: false);
        var frame = new byte[Http2Frame.DefaultMaxFrameSize];
        Http2ErrorCode? code = null;
        var reading = peer.ReadUntilAsync(Http2FrameType.RstStream);
        for (var sent = 0; sent <= Http2ServerLimits.StreamReceiveWindow && !reading.IsCompleted; sent += frame.Length)
        {
            await peer.SendFrameAsync(Http2FrameType.Data, 0, 1, frame);
        }
        var reset = await reading.WaitAsync(TimeSpan.FromSeconds(10));
        code = (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(reset.Payload);
        Assert.Equal(Http2ErrorCode.FlowControlError, code);
    }

    [Fact]
    public async Task AHeaderBlockThatNeverEndsIsCutAfterTheHeadersTimeout()
    {
        Limits = new(TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(130));
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        // HEADERS without END_HEADERS, and nothing after it.
        var block = peer.Encode(Pairs([":method", "GET", ":scheme", "https", ":path", "/"]));
        await peer.SendFrameAsync(Http2FrameType.Headers, 0, 1, block);
        var started = DateTime.UtcNow;
        Assert.True(await peer.ReadsToTheEndAsync(TimeSpan.FromSeconds(10)), "the connection stayed open");
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));
        Assert.Equal(0, _applicationCalls);
    }

    [Fact]
    public async Task CONTINUATIONFramesTricklingInDoNotExtendAHeaderBlocksTime()
    {
        Limits = new(TimeSpan.FromMilliseconds(600), TimeSpan.FromSeconds(130));
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        var block = peer.Encode(Pairs([":method", "GET", ":scheme", "https", ":path", "/", "x-long", new string('a', 400)]));
        await peer.SendFrameAsync(Http2FrameType.Headers, 0, 1, block[..10]);
        var started = DateTime.UtcNow;
        var closed = peer.ReadsToTheEndAsync(TimeSpan.FromSeconds(10));
        for (var at = 10; at < block.Length - 10 && !closed.IsCompleted; at += 10)
        {
            await Task.Delay(100);
            try
            {
                await peer.SendFrameAsync(Http2FrameType.Continuation, 0, 1, block[at..(at + 10)]);
            }
            catch (IOException)
            {
                break;
            }
        }
        Assert.True(await closed, "the connection stayed open");
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(3), $"cut after {(DateTime.UtcNow - started).TotalMilliseconds:F0} ms");
        Assert.Equal(0, _applicationCalls);
    }

    [Fact]
    public async Task ABusyConnectionLivesPastTheHeadersTimeout()
    {
        // The headers timeout is for a block left unfinished, not for one the reader is decoding when the heartbeat looks.
        Limits = new(TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(130));
        _application = context =>
        {
            context.Response.ContentLength = 2;
            return context.Response.WriteAsync("ok");
        };
        await using var client = await OpenClientAsync();
        var until = DateTime.UtcNow.AddSeconds(4);
        var answered = 0;
        await Task.WhenAll(Enumerable.Range(0, 32).Select(async worker =>
        {
            while (DateTime.UtcNow < until)
            {
                Assert.Equal((200, "ok"), await GetAsync(client, "/busy/" + worker));
                Interlocked.Increment(ref answered);
            }
        }));
        Assert.True(answered > 100, $"{answered} answered");
    }

    [Fact]
    public async Task AConnectionThatSkipsThePrefaceIsEndedWithGoAwayProtocolError()
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, Port);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var received = new MemoryStream();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        int n;
        while ((n = await stream.ReadAsync(buffer, timeout.Token)) > 0)
        {
            received.Write(buffer, 0, n);
        }
        var frames = received.ToArray();
        var goAway = FindFrame(frames, Http2FrameType.GoAway);
        Assert.NotNull(goAway);
        Assert.Equal(Http2ErrorCode.ProtocolError, (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(goAway.AsSpan(4)));
        Assert.Equal(0, _applicationCalls);
    }

    private static byte[]? FindFrame(byte[] octets, Http2FrameType type)
    {
        for (var at = 0; at + Http2Frame.HeaderLength <= octets.Length;)
        {
            var (length, frameType, _, _) = Http2Frame.ReadHeader(octets.AsSpan(at));
            if (frameType == type)
            {
                return octets.AsSpan(at + Http2Frame.HeaderLength, length).ToArray();
            }
            at += Http2Frame.HeaderLength + length;
        }
        return null;
    }

    [Fact]
    public async Task AnExtendedConnectIsAcceptedAndCarriesBytesBothWays()
    {
        _application = async context =>
        {
            var connect = context.Features.Get<IHttpExtendedConnectFeature>()!;
            Assert.True(connect.IsExtendedConnect);
            Assert.Equal("websocket", connect.Protocol);
            var stream = await connect.AcceptAsync();
            var buffer = new byte[64];
            var n = await stream.ReadAsync(buffer);
            await stream.WriteAsync(Encoding.ASCII.GetBytes("echo:" + Encoding.ASCII.GetString(buffer, 0, n)));
            await stream.FlushAsync();
        };
        await using var peer = await ScriptedClient.ConnectAsync(Port);
        await peer.SendHeadersAsync(1, Pairs([":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/chat", ":authority", "orders"]), endStream: false);
        var head = await peer.ReadUntilAsync(Http2FrameType.Headers);
        Assert.Equal(0, head.Flags & Http2Frame.EndStream);
        await peer.SendFrameAsync(Http2FrameType.Data, 0, 1, Encoding.ASCII.GetBytes("ping"));
        var data = await peer.ReadUntilAsync(Http2FrameType.Data);
        Assert.Equal("echo:ping", Encoding.ASCII.GetString(data.Payload));
    }

    [Fact]
    public async Task ARequestAskingToContinueGetsTheInterim100WhenTheApplicationFirstReadsItsBody()
    {
        _application = async context =>
        {
            var result = await context.Request.BodyReader.ReadAsync();
            var length = result.Buffer.Length;
            context.Request.BodyReader.AdvanceTo(result.Buffer.End);
            await context.Response.WriteAsync("read " + length);
        };
        using var client = NewClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, Url("/upload")) { Content = new StringContent("payload"), Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        request.Headers.ExpectContinue = true;
        using var response = await client.SendAsync(request);
        Assert.Equal("read 7", await response.Content.ReadAsStringAsync());
    }

    /// <summary>A ConnectionContext over a loopback socket: aborting it closes the socket, as the inbound transport's does.</summary>
    private sealed class LoopbackConnection(NetworkStream stream, Socket socket) : ConnectionContext, IDuplexPipe
    {
        private readonly PipeReader _input = PipeReader.Create(stream, new StreamPipeReaderOptions(leaveOpen: true));
        private readonly PipeWriter _output = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));

        public override string ConnectionId { get; set; } = "test";

        public override IFeatureCollection Features { get; } = new FeatureCollection();

        public override IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();

        public override IDuplexPipe Transport { get => this; set => throw new NotSupportedException(); }

        public override EndPoint? RemoteEndPoint { get => socket.RemoteEndPoint; set { } }

        PipeReader IDuplexPipe.Input => _input;

        PipeWriter IDuplexPipe.Output => _output;

        public override void Abort(ConnectionAbortedException abortReason) => stream.Dispose();

        public override async ValueTask DisposeAsync()
        {
            await stream.DisposeAsync();
            await base.DisposeAsync();
        }
    }

    /// <summary>A client that writes the frames a test scripts, and reads what the server sends.</summary>
    private sealed class ScriptedClient : IAsyncDisposable
    {
        private readonly Socket _socket;
        private readonly NetworkStream _stream;
        private readonly HpackEncoder _encoder = new();

        private ScriptedClient(Socket socket)
        {
            _socket = socket;
            _stream = new NetworkStream(socket, ownsSocket: true);
        }

        public static async Task<ScriptedClient> ConnectAsync(int port)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(IPAddress.Loopback, port);
            var client = new ScriptedClient(socket);
            await client._stream.WriteAsync(Http2Frame.ClientPreface.ToArray());
            await client.SendFrameAsync(Http2FrameType.Settings, 0, 0, []);
            return client;
        }

        public byte[] Encode((string Name, string Value)[] fields)
        {
            var block = new ArrayBufferWriter<byte>();
            _encoder.BeginBlock(block);
            foreach (var (name, value) in fields)
            {
                _encoder.WriteField(block, name, value, HpackIndexing.NoIndex);
            }
            return block.WrittenSpan.ToArray();
        }

        /// <summary>A header block, as HEADERS and (past the default frame size) CONTINUATION frames.</summary>
        public async Task SendHeadersAsync(int streamId, (string Name, string Value)[] fields, bool endStream)
        {
            var block = Encode(fields);
            var size = Http2Frame.DefaultMaxFrameSize;
            for (var at = 0; at == 0 || at < block.Length; at += size)
            {
                var last = at + size >= block.Length;
                var flags = (byte)((last ? Http2Frame.EndHeaders : 0) | (at == 0 && endStream ? Http2Frame.EndStream : 0));
                await SendFrameAsync(at == 0 ? Http2FrameType.Headers : Http2FrameType.Continuation, flags, streamId, block[at..Math.Min(block.Length, at + size)]);
            }
        }

        private readonly HpackDecoder _decoder = new();

        /// <summary>The :status of an answer's HEADERS frame (the server neither pads nor prioritizes).</summary>
        public int StatusOf(byte[] payload)
        {
            var fields = new FieldSink();
            _decoder.Decode(payload, fields);
            return int.Parse(fields.Fields.Single(static f => f.Name == ":status").Value, System.Globalization.CultureInfo.InvariantCulture);
        }

        private sealed class FieldSink : IHpackFieldSink
        {
            public List<(string Name, string Value)> Fields { get; } = [];

            public void OnField(string name, string value) => Fields.Add((name, value));
        }

        public async Task SendFrameAsync(Http2FrameType type, byte flags, int streamId, byte[] payload)
        {
            var frame = new byte[Http2Frame.HeaderLength + payload.Length];
            Http2Frame.WriteHeader(frame, payload.Length, type, flags, streamId);
            payload.CopyTo(frame, Http2Frame.HeaderLength);
            await _stream.WriteAsync(frame);
        }

        public async Task<(Http2FrameType Type, byte Flags, int StreamId, byte[] Payload)> ReadUntilAsync(Http2FrameType type)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            while (true)
            {
                var head = new byte[Http2Frame.HeaderLength];
                await _stream.ReadExactlyAsync(head, timeout.Token);
                var (length, frameType, flags, id) = Http2Frame.ReadHeader(head);
                var payload = new byte[length];
                await _stream.ReadExactlyAsync(payload, timeout.Token);
                if (frameType == type)
                {
                    return (frameType, flags, id, payload);
                }
            }
        }

        /// <summary>True when the server closed the connection within <paramref name="within"/>.</summary>
        public async Task<bool> ReadsToTheEndAsync(TimeSpan within)
        {
            using var timeout = new CancellationTokenSource(within);
            var buffer = new byte[4096];
            try
            {
                while (await _stream.ReadAsync(buffer, timeout.Token) > 0)
                {
                }
                return true;
            }
            catch (OperationCanceledException)
            {
                return false;
            }
            catch (IOException)
            {
                return true;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stream.DisposeAsync();
            _socket.Dispose();
        }
    }
}
