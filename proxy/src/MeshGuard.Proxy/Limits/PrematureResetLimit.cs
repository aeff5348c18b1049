using Microsoft.AspNetCore.Connections;

namespace MeshGuard.Proxy.Limits;

/// <summary>
/// The inbound listener's bound on streams a peer cancels before they are answered: HTTP/2's rapid reset
/// (CVE-2023-44487), where each stream opened and reset at once costs the sidecar a stream, a handler and perhaps an
/// app request, yet never counts against the concurrent-stream limit. Each connection gets a
/// <see cref="PrematureResetBudget"/>; a peer may cancel <see cref="Allowance"/> streams more than it let be
/// answered, and the connection is closed past that. The work a flood can cause is then bounded by the answered
/// work the same peer asked for, whatever the timing of the handlers (Kestrel's own heuristic counts only streams
/// whose handler still runs when the reset arrives, so a fast sidecar was never cut by it).
/// </summary>
internal sealed partial class PrematureResetLimit(ILogger<PrematureResetLimit> logger)
{
    /// <summary>Cancelled streams a connection may have beyond those answered: a client that gives up on a burst
    /// of calls (a page left, a fan-out cancelled) stays well inside it.</summary>
    public const int Allowance = 100;

    /// <summary>A stream cancelled after this long was a call given up on, not a flood: it is not counted.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(1);

    private long _resets;
    private long _cut;

    /// <summary>Streams cancelled by their peer before an answer and within <see cref="Lifetime"/>.</summary>
    public long PrematureResets => Interlocked.Read(ref _resets);

    /// <summary>Connections closed because their peer cancelled more than its allowance.</summary>
    public long ConnectionsCut => Interlocked.Read(ref _cut);

    public PrematureResetBudget Open(ConnectionContext connection, string peer) => new(this, connection, peer);

    internal void Counted() => Interlocked.Increment(ref _resets);

    internal void Cut(ConnectionContext connection, string peer, int premature, int answered)
    {
        Interlocked.Increment(ref _cut);
        LogCut(logger, peer, connection.RemoteEndPoint?.ToString() ?? "", premature, answered);
        connection.Abort(new ConnectionAbortedException("meshguard: the peer cancelled too many streams before their answer"));
    }

    [LoggerMessage(EventId = 310, Level = LogLevel.Warning, Message = "inbound: connection from {Peer} ({Address}) closed: it cancelled {Premature} streams before their answer against {Answered} answered")]
    private static partial void LogCut(ILogger logger, string peer, string address, int premature, int answered);
}
