using System.Buffers;
using System.Net;
using System.Net.Sockets;
using MeshGuard.Hosting;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http1;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.Proxy.Tests.Transport;

/// <summary>A keep-alive connection to the app, against a real socket on loopback.</summary>
public sealed class AppConnectionTests
{
    private static readonly byte[] SmallAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray();

    [Fact]
    public async Task AnIdleConnectionHoldsASmallBlockAndALargeBodyMovesInLargeReads()
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var time = new FakeTimeProvider();
        using var small = new BlockPool(4 * 1024, maxRetained: 64, time);
        using var large = new BlockPool(32 * 1024, maxRetained: 64, time);
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        using var app = await listener.AcceptAsync();
        using var connection = new AppConnection(client, new SizedBlocks(small, large));

        // Small answers: read into small blocks, and the connection waits for the next one in a small block.
        for (var i = 0; i < 3; i++)
        {
            await app.SendAsync(SmallAnswer);
            Assert.Equal(SmallAnswer, await ReadAsync(connection, SmallAnswer.Length));
        }
        await HeldAsync(small, 1);
        Assert.Equal(0, large.Created);

        // A large answer arrives while the connection waits: after the read that fills the small block, large reads.
        var body = new byte[256 * 1024];
        Random.Shared.NextBytes(body);
        await app.SendAsync(body);
        Assert.Equal(body, await ReadAsync(connection, body.Length));
        Assert.True(large.Created > 0, "a large body was read into small blocks only");
        var smallBefore = small.Created;
        Assert.True(smallBefore < 16, $"{smallBefore} small blocks for a 256 KiB body");

        // The next small answer: back to a small block, every large block free again.
        await app.SendAsync(SmallAnswer);
        Assert.Equal(SmallAnswer, await ReadAsync(connection, SmallAnswer.Length));
        await app.SendAsync(SmallAnswer);
        Assert.Equal(SmallAnswer, await ReadAsync(connection, SmallAnswer.Length));
        await HeldAsync(large, 0);
        await HeldAsync(small, 1);
        Assert.False(connection.HoldsUnaskedInput());
    }

    private static async Task<byte[]> ReadAsync(AppConnection connection, int length)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var read = await connection.Reader.ReadAsync(timeout.Token);
        while (read.Buffer.Length < length)
        {
            connection.Reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            read = await connection.Reader.ReadAsync(timeout.Token);
        }
        var octets = read.Buffer.Slice(0, length).ToArray();
        connection.Reader.AdvanceTo(read.Buffer.GetPosition(length));
        return octets;
    }

    /// <summary>Until the pool's blocks out on rent are <paramref name="held"/> (the receive loop runs on its own).</summary>
    private static async Task HeldAsync(BlockPool pool, long held)
    {
        await Eventually.TrueAsync(() => pool.Created - pool.Free == held, interval: TimeSpan.FromMilliseconds(10));
        Assert.Equal(held, pool.Created - pool.Free);
    }
}
