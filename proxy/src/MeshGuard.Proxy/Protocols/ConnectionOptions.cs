using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Protocols;

/// <summary>
/// RFC 9110 section 7.6.1: a header that <c>Connection</c> names is hop-by-hop and stops at the first
/// proxy. The forwarder drops the fixed hop-by-hop set itself (Connection, Keep-Alive, TE, Transfer-Encoding,
/// Proxy-*, Upgrade outside WebSockets); this drops what an HTTP/1.1 peer declared hop-by-hop on top.
/// <c>Upgrade</c> is left to the forwarder, which carries WebSocket upgrades.
/// </summary>
internal static class ConnectionOptions
{
    /// <summary>Removes from <paramref name="headers"/> every header that <paramref name="connection"/> names.</summary>
    public static void RemoveNamedHeaders(IHeaderDictionary headers, StringValues connection)
    {
        foreach (var value in connection)
        {
            var rest = (value ?? "").AsSpan();
            while (!rest.IsEmpty)
            {
                var comma = rest.IndexOf(',');
                var token = (comma < 0 ? rest : rest[..comma]).Trim(" \t");
                rest = comma < 0 ? default : rest[(comma + 1)..];
                if (token.IsEmpty || token.Equals("close", StringComparison.OrdinalIgnoreCase) || token.Equals("upgrade", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }
                // Header names are few and short; the allocation happens only for an option that is actually sent.
                if (!token.Equals("keep-alive", StringComparison.OrdinalIgnoreCase))
                {
                    headers.Remove(token.ToString());
                }
            }
        }
    }
}
