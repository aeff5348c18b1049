using System.Net;
using System.Net.Sockets;

namespace MeshGuard.Proxy.Redirect;

/// <summary>
/// Where a connection that iptables redirected was headed: the kernel keeps it in the connection's conntrack
/// entry and hands it out through getsockopt SO_ORIGINAL_DST (SOL_IP, or SOL_IPV6 for IPv6).
/// </summary>
internal static class OriginalDestination
{
    private const int SolIp = 0;
    private const int SolIpv6 = 41;
    private const int SoOriginalDst = 80;

    /// <summary>The original destination, or null where the kernel has none (no NAT happened, or no conntrack).</summary>
    public static IPEndPoint? Read(Socket socket)
    {
        var v6 = socket.AddressFamily == AddressFamily.InterNetworkV6;
        // sockaddr_in (16 bytes) or sockaddr_in6 (28): family, port (network order), [flow info], address.
        Span<byte> address = stackalloc byte[28];
        int length;
        try
        {
            length = socket.GetRawSocketOption(v6 ? SolIpv6 : SolIp, SoOriginalDst, address);
        }
        catch (SocketException)
        {
            return null;
        }
        var port = (address[2] << 8) | address[3];
        if (v6)
        {
            return length >= 24 ? new IPEndPoint(new IPAddress(address.Slice(8, 16)), port) : null;
        }
        return length >= 8 ? new IPEndPoint(new IPAddress(address.Slice(4, 4)), port) : null;
    }
}
