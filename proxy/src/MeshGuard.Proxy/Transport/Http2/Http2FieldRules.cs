namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>Field rules HTTP/2 sets for both sides of a connection.</summary>
internal static class Http2FieldRules
{
    /// <summary>
    /// A connection-specific field (RFC 9113 8.2.2): malformed in an HTTP/2 message, never carried onto one. Compared
    /// ignoring case (a received field's name is lower case already; an HTTP/1.1 peer's may not be).
    /// </summary>
    public static bool IsConnectionSpecific(string name) =>
        name.Length is 7 or 10 or 16 or 17 && (string.Equals(name, "Upgrade", StringComparison.OrdinalIgnoreCase)
            || string.Equals(name, "Connection", StringComparison.OrdinalIgnoreCase) || string.Equals(name, "Keep-Alive", StringComparison.OrdinalIgnoreCase)
            || string.Equals(name, "Proxy-Connection", StringComparison.OrdinalIgnoreCase) || string.Equals(name, "Transfer-Encoding", StringComparison.OrdinalIgnoreCase));
}
