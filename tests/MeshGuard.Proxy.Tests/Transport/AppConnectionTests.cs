using System.Net;
using System.Net.Sockets;
using System.Text;
using MeshGuard.Hosting;
using MeshGuard.Proxy.Transport.Http1;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.Proxy.Tests.Transport;

/// <summary>A keep-alive connection to the app, against a real socket on loopback.</summary>
public sealed class AppConnectionTests
{
    [Fact]
    public async Task AConnectionBetweenRequestsHoldsNoBufferBlock()
    {
        using var listener = new Socket(SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var pool = new BlockPool(32 * 1024, maxRetained: 8, new FakeTimeProvider());
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        using var app = await listener.AcceptAsync();
        using var connection = new AppConnection(client, pool);

        // Waiting for the app's first answer takes no block.
        await Task.Delay(100);
        Assert.Equal(0, pool.Created);

        var answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray();
        for (var i = 0; i < 3; i++)
        {
            await app.SendAsync(answer);
            var read = await connection.Reader.ReadAsync();
            while (read.Buffer.Length < answer.Length)
            {
                connection.Reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
                read = await connection.Reader.ReadAsync();
            }
            Assert.Equal(Encoding.ASCII.GetString(answer), Encoding.ASCII.GetString(read.Buffer));
            connection.Reader.AdvanceTo(read.Buffer.End);
            // The answer read whole, the block goes back: every block made is free again.
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (pool.Free != pool.Created && DateTime.UtcNow < deadline)
            {
                await Task.Delay(10);
            }
            Assert.Equal(1, pool.Created);
            Assert.Equal(1, pool.Free);
        }
        Assert.False(connection.HoldsUnaskedInput());

        // The app closing the idle connection is still seen.
        app.Shutdown(SocketShutdown.Both);
        var end = DateTime.UtcNow.AddSeconds(10);
        while (!connection.HoldsUnaskedInput() && DateTime.UtcNow < end)
        {
            await Task.Delay(10);
        }
        Assert.True(connection.HoldsUnaskedInput());
    }
}
