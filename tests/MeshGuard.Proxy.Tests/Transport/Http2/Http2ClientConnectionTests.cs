using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MeshGuard.Proxy.Transport.Http2;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace MeshGuard.Proxy.Tests.Transport.Http2;

/// <summary>The sidecar's HTTP/2 client against a real HTTP/2 server (Kestrel, prior knowledge on loopback).</summary>
public sealed class Http2ClientConnectionTests : IAsyncLifetime
{
    private WebApplication? _server;
    private int _port;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.Http2.MaxStreamsPerConnection = 8;
            kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2);
        });
        _server = builder.Build();
        _server.MapGet("/echo/{id}", (HttpContext context, string id) =>
        {
            context.Response.Headers["x-steady"] = "same-every-time";
            return "answer " + id;
        });
        _server.MapGet("/big/{size:int}/{chunkSize:int}", async (HttpContext context, int size, int chunkSize) =>
        {
            context.Response.ContentLength = size;
            var chunk = new byte[chunkSize];
            for (var sent = 0; sent < size; sent += chunk.Length)
            {
                var n = Math.Min(chunk.Length, size - sent);
                for (var i = 0; i < n; i++)
                {
                    chunk[i] = (byte)((sent + i) % 251);
                }
                if (sent + n < size)
                {
                    await context.Response.Body.WriteAsync(chunk.AsMemory(0, n));
                }
                else
                {
                    // The last piece is left for the server to flush as the answer ends, as the inbound app leg does.
                    context.Response.BodyWriter.Write(chunk.AsSpan(0, n));
                }
            }
        });
        _server.MapPost("/count", async (HttpContext context) =>
        {
            long total = 0;
            var buffer = new byte[65536];
            int n;
            while ((n = await context.Request.Body.ReadAsync(buffer)) > 0)
            {
                total += n;
            }
            return total.ToString(System.Globalization.CultureInfo.InvariantCulture);
        });
        _server.MapGet("/trailers", async (HttpContext context) =>
        {
            await context.Response.WriteAsync("body");
            context.Response.AppendTrailer("grpc-status", "0");
        });
        _server.MapGet("/wait", async (HttpContext context) => await Task.Delay(Timeout.Infinite, context.RequestAborted));
        _server.MapGet("/abort", (HttpContext context) => context.Abort());
        _server.MapGet("/slow", async (HttpContext context) =>
        {
            await context.Response.StartAsync();
            await context.Response.Body.FlushAsync();
            await Task.Delay(300);
            await context.Response.WriteAsync("done");
        });
        await _server.StartAsync();
        _port = new Uri(_server.Urls.First()).Port;
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private async Task<Http2ClientConnection> ConnectAsync()
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, _port);
        return await Http2ClientConnection.OpenAsync(new NetworkStream(socket, ownsSocket: true), CancellationToken.None);
    }

    /// <summary>A socket's stream that counts the writes made to it.</summary>
    private sealed class CountedStream(Socket socket) : NetworkStream(socket, ownsSocket: true)
    {
        private int _writes;

        public int Writes => Volatile.Read(ref _writes);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _writes);
            return base.WriteAsync(buffer, cancellationToken);
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Interlocked.Increment(ref _writes);
            base.Write(buffer);
        }
    }

    [Fact]
    public async Task RequestBodiesEndingWhileOtherStreamsAreInFlightShareOneWrite()
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Loopback, _port);
        var transport = new CountedStream(socket);
        var started = new List<IThreadPoolWorkItem>();
        await using var connection = await Http2ClientConnection.OpenAsync(transport, CancellationToken.None, item =>
        {
            lock (started)
            {
                started.Add(item);
            }
        });
        // A lone request goes out at once.
        var waiting = connection.TryOpenStream(WriteHead, new Head("GET", "/wait"), endStream: true, moreToCome: false)!;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (transport.Writes < 2 && DateTime.UtcNow < deadline) // the preface and settings, then the head
        {
            await Task.Delay(10);
        }
        await Task.Delay(100); // and the settings acknowledgement, if it comes on its own
        var before = transport.Writes;

        // Three uploads, small bodies, as gRPC calls are: each one's head and body wait for the deferred write.
        var uploads = new List<Http2ClientStream>();
        for (var i = 1; i <= 3; i++)
        {
            var stream = connection.TryOpenStream(WriteHead, new Head("POST", "/count"), endStream: false, moreToCome: true)!;
            var send = stream.SendDataAsync(new byte[i * 100], endStream: true, CancellationToken.None);
            Assert.True(send.IsCompletedSuccessfully, "the body's end waited for a write of its own");
            uploads.Add(stream);
        }
        Assert.Equal(before, transport.Writes);
        IThreadPoolWorkItem write;
        lock (started)
        {
            write = Assert.Single(started);
        }
        write.Execute();
        for (var i = 0; i < uploads.Count; i++)
        {
            await uploads[i].ReadHeadAsync();
            Assert.Equal(200, uploads[i].Status);
            Assert.Equal(((i + 1) * 100).ToString(System.Globalization.CultureInfo.InvariantCulture), Encoding.ASCII.GetString(await uploads[i].ReadToEndAsync()));
            uploads[i].Release();
        }
        // All three went in the one deferred write.
        Assert.Equal(before + 1, transport.Writes);
        Assert.Single(started);
        waiting.Reset();
        waiting.Release(reusable: false);
    }

    private sealed record Head(string Method, string Path, params (string Name, string Value)[] Extra);

    private static readonly Action<Head, HpackEncoder, IBufferWriter<byte>> WriteHead = static (head, encoder, block) =>
    {
        encoder.WriteField(block, ":method", head.Method, HpackIndexing.Index);
        encoder.WriteField(block, ":scheme", "http", HpackIndexing.Index);
        encoder.WriteField(block, ":authority", "orders", HpackIndexing.Index);
        encoder.WriteField(block, ":path", head.Path, HpackIndexing.NoIndex);
        foreach (var (name, value) in head.Extra)
        {
            encoder.WriteField(block, name, value, HpackIndexing.Index);
        }
    };

    /// <summary>A request and its whole answer; the answer's fields are read before the stream is released, as the leg reads them.</summary>
    private static async Task<(int Status, byte[] Body, (string Name, string Value)[] Fields, Http2ClientStream Stream)> SendAsync(Http2ClientConnection connection, Head head, byte[]? body = null)
    {
        var stream = connection.TryOpenStream(WriteHead, head, endStream: body is null, moreToCome: body is not null) ?? throw new InvalidOperationException("no room");
        if (body is not null)
        {
            await stream.SendDataAsync(body, endStream: true, CancellationToken.None);
        }
        await stream.ReadHeadAsync();
        var fields = stream.Fields.ToArray();
        var received = await stream.ReadToEndAsync();
        stream.Release();
        return (stream.Status, received, fields, stream);
    }

    [Fact]
    public async Task ConcurrentRequestsShareOneConnectionAndEachGetsItsOwnAnswer()
    {
        await using var connection = await ConnectAsync();
        for (var round = 0; round < 5; round++)
        {
            var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => SendAsync(connection, new Head("GET", $"/echo/{round}-{i}"))));
            for (var i = 0; i < answers.Length; i++)
            {
                Assert.Equal(200, answers[i].Status);
                Assert.Equal($"answer {round}-{i}", Encoding.UTF8.GetString(answers[i].Body));
                Assert.Contains(("x-steady", "same-every-time"), answers[i].Fields);
            }
        }
        Assert.Equal(0, connection.ActiveStreams);
    }

    [Fact]
    public async Task BodiesLargerThanEveryWindowArriveWholeBothWays()
    {
        await using var connection = await ConnectAsync();
        const int Size = 5 * 1024 * 1024 + 123;
        var downloads = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => SendAsync(connection, new Head("GET", $"/big/{Size}/{(i + 1) * 16384 - 100}"))));
        foreach (var download in downloads)
        {
            Assert.Equal(Size, download.Body.Length);
            Assert.True(download.Body.Select((b, i) => b == (byte)(i % 251)).All(ok => ok), "the body's octets are out of order");
        }
        var upload = await SendAsync(connection, new Head("POST", "/count"), new byte[3 * 1024 * 1024]);
        Assert.Equal((3 * 1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture), Encoding.ASCII.GetString(upload.Body));
    }

    [Fact]
    public async Task TrailersArriveAfterTheBody()
    {
        await using var connection = await ConnectAsync();
        var answer = await SendAsync(connection, new Head("GET", "/trailers", ("te", "trailers")));
        Assert.Equal("body", Encoding.ASCII.GetString(answer.Body));
        Assert.Equal([("grpc-status", "0")], answer.Stream.Trailers.ToArray());
    }

    [Fact]
    public async Task NoStreamOpensBeyondThePeersLimitAndAResetOneFreesItsPlace()
    {
        await using var connection = await ConnectAsync();
        var waiting = Enumerable.Range(0, 8).Select(_ => connection.TryOpenStream(WriteHead, new Head("GET", "/wait"), endStream: true, moreToCome: false)).ToList();
        Assert.All(waiting, Assert.NotNull);
        Assert.Null(connection.TryOpenStream(WriteHead, new Head("GET", "/wait"), endStream: true, moreToCome: false));
        waiting[0]!.Reset();
        var failure = await Assert.ThrowsAsync<Http2StreamException>(() => waiting[0]!.ReadHeadAsync().AsTask());
        Assert.Equal(Http2ErrorCode.Cancel, failure.Code);
        var answer = await SendAsync(connection, new Head("GET", "/echo/after-reset"));
        Assert.Equal("answer after-reset", Encoding.UTF8.GetString(answer.Body));
    }

    [Fact]
    public async Task StreamsFailWhenTheConnectionEnds()
    {
        var connection = await ConnectAsync();
        var stream = connection.TryOpenStream(WriteHead, new Head("GET", "/wait"), endStream: true, moreToCome: false)!;
        await connection.DisposeAsync();
        await Assert.ThrowsAsync<Http2StreamException>(() => stream.ReadHeadAsync().AsTask());
        Assert.True(connection.IsClosing);
        Assert.Null(connection.TryOpenStream(WriteHead, new Head("GET", "/echo/late"), endStream: true, moreToCome: false));
    }

    [Fact]
    public async Task AResetOfAFinishedStreamLeavesTheStreamThatNowHasItsBodyPipeAlone()
    {
        await using var connection = await ConnectAsync();
        // The peer resets the first stream (its body's writer ends) and this side releases it (its reader ends): its
        // body pipe goes back to the pool, and the next stream takes it. Released as something may still touch it
        // (so the stream object itself is never used again).
        var finished = connection.TryOpenStream(WriteHead, new Head("GET", "/abort"), endStream: true, moreToCome: false)!;
        await Assert.ThrowsAsync<Http2StreamException>(() => finished.ReadHeadAsync().AsTask());
        finished.Release(reusable: false);
        var waiting = connection.TryOpenStream(WriteHead, new Head("GET", "/slow"), endStream: true, moreToCome: false)!;
        await waiting.ReadHeadAsync();
        var read = waiting.ReadBodyAsync().AsTask();
        // A late reset and a second release of the finished stream, as a cancellation callback might make them.
        finished.Reset();
        finished.Release();
        var body = new MemoryStream();
        while (true)
        {
            var result = await read;
            foreach (var segment in result.Buffer)
            {
                body.Write(segment.Span);
            }
            waiting.Consumed(result);
            if (result.IsCompleted)
            {
                break;
            }
            read = waiting.ReadBodyAsync().AsTask();
        }
        waiting.Release();
        Assert.Equal("done", Encoding.UTF8.GetString(body.ToArray()));
    }

    [Fact]
    public void APooledPipeComesBackResetAndThePoolKeepsNoMoreThanItsBound()
    {
        var pool = new PipePool(new System.IO.Pipelines.PipeOptions(), capacity: 1);
        var first = pool.Rent();
        first.Writer.Write("left over"u8);
        first.Writer.Complete();
        first.Reader.Complete();
        pool.Return(first);
        Assert.Same(first, pool.Rent());
        Assert.False(first.Reader.TryRead(out _));
        pool.Return(Completed(pool.Rent()));
        pool.Return(Completed(pool.Rent()));
        pool.Return(Completed(new System.IO.Pipelines.Pipe()));
        Assert.Equal(1, pool.Count);

        static System.IO.Pipelines.Pipe Completed(System.IO.Pipelines.Pipe pipe)
        {
            pipe.Writer.Complete();
            pipe.Reader.Complete();
            return pipe;
        }
    }
}
