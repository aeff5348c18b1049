namespace MeshGuard.Proxy.Limits;

/// <summary>
/// Bounds on what one peer or app can hold of a sidecar: open connections per data listener (inbound and
/// outbound each) and the time a request's headers may take to arrive (a slow-headers attacker holds a
/// connection without ever sending a request). Request line and header sizes keep Kestrel's limits
/// (8 KiB → 414, 32 KiB → 431).
/// </summary>
internal sealed record ListenerLimits(int MaxConnections, TimeSpan RequestHeadersTimeout)
{
    public const int DefaultMaxConnections = 20_000;

    public const int DefaultRequestHeadersTimeoutSeconds = 10;

    /// <summary>How long the own servers keep a connection with no request under way open (Kestrel's keep-alive timeout).</summary>
    public static readonly TimeSpan KeepAliveTimeout = TimeSpan.FromSeconds(130);
}
