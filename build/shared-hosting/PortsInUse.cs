using System.Net;
using System.Net.Sockets;

namespace MeshGuard.Hosting;

/// <summary>
/// Before the server starts: every port it will listen on is tried once, so that a port another process holds is
/// one line naming the flag that chose it ("--admin-port 15000: 127.0.0.1:15000 is in use by another process")
/// instead of the server's bind error and stack. The server binds right after; a port taken in between still fails
/// there, with its own message.
/// </summary>
internal static class PortsInUse
{
    /// <summary>Throws an <see cref="IOException"/> naming the flag of the first listener whose address is taken.</summary>
    public static void ThrowIfAnyTaken(IEnumerable<(string Flag, IPEndPoint Endpoint)> listeners)
    {
        foreach (var (flag, endpoint) in listeners)
        {
            using var probe = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            // As the server binds: connections of an earlier run waiting out TIME_WAIT do not hold the port; a listener does.
            probe.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            try
            {
                probe.Bind(endpoint);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                throw new IOException($"{flag} {endpoint.Port}: {endpoint} is in use by another process");
            }
        }
    }
}
