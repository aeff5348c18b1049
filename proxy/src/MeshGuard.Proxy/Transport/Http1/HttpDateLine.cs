using System.Text;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>
/// The <c>Date</c> field line an answer of the own HTTP/1.1 server carries when the handler set none (RFC 9110
/// 6.6.1), made at most once a second, as Kestrel keeps its date: the time of an answer, to the second.
/// </summary>
internal static class HttpDateLine
{
    private sealed record Line(long Second, byte[] Octets);

    private static Line _current = new(-1, []);

    public static ReadOnlySpan<byte> Current
    {
        get
        {
            var now = TimeProvider.System.GetUtcNow();
            var second = now.ToUnixTimeSeconds();
            var current = Volatile.Read(ref _current);
            if (current.Second != second)
            {
                current = new(second, Encoding.ASCII.GetBytes("Date: " + now.ToString("r", System.Globalization.CultureInfo.InvariantCulture) + "\r\n"));
                Volatile.Write(ref _current, current);
            }
            return current.Octets;
        }
    }
}
