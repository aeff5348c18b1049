namespace MeshGuard.Proxy.Transport;

/// <summary>
/// What one request's field section may hold at every listener of the sidecar, whatever the protocol: Kestrel's own
/// limits (100 fields, 32 KiB), which its HTTP/1.1 server and the own HTTP/1.1 parser already held every caller to,
/// answering what is beyond them with 431. The own HTTP/2 server holds a request's head to the same, plus what a
/// sidecar before it adds on the way (<see cref="AddedOnTheWay"/>: a request id, a traceparent, the protocol the app
/// spoke), and answers 431 too. Why it matters beyond consistency: an app behind the sidecar's HTTP/2 leg shares its
/// connections among all callers, and Kestrel refuses a block of more than twice its field limit as the whole
/// connection's error, failing every other caller's request in flight on it (measured: 150 fields, a 431 for that
/// stream; 200, GOAWAY with PROTOCOL_ERROR).
/// </summary>
internal static class RequestFieldBounds
{
    /// <summary>Fields a caller may send, pseudo-fields apart.</summary>
    public const int MaxFields = 100;

    /// <summary>The field section's size as RFC 9113 counts it: each field's name and value and 32 octets.</summary>
    public const int MaxSectionBytes = 32 * 1024;

    /// <summary>Fields a sidecar may add to a request it passes on, and the room they take.</summary>
    public const int AddedOnTheWay = 4;

    public const int AddedOnTheWayBytes = 1024;
}
