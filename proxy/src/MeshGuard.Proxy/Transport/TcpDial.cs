using System.Net;
using System.Net.Sockets;

namespace MeshGuard.Proxy.Transport;

/// <summary>A TCP connection to the local app (either leg): Nagle off, the socket closed again if connecting fails.</summary>
internal static class TcpDial
{
    public static async ValueTask<Socket> ConnectAsync(EndPoint endpoint, CancellationToken cancellation)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, cancellation);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return socket;
    }
}
