using System.Collections.Concurrent;
using System.Collections.Frozen;
using Microsoft.AspNetCore.Connections;

namespace MeshGuard.Proxy.Authorization;

/// <summary>
/// The inbound connections open now, by peer, so that a revocation also ends what is already connected: when a
/// config with newly revoked identities is published, every connection of those peers is aborted at once. (A new
/// connection is checked against the config in force after its handshake; its requests are checked one by one.)
/// </summary>
internal sealed partial class PeerConnections(ILogger<PeerConnections> logger)
{
    private readonly ConcurrentDictionary<ConnectionContext, string> _open = new();

    /// <summary>
    /// Follows an inbound connection until it ends; dispose the result when it does. Track before checking the
    /// config in force: a revocation published in between then still finds the connection.
    /// </summary>
    public Tracked Track(ConnectionContext connection, string peer)
    {
        _open[connection] = peer;
        return new Tracked(this, connection);
    }

    /// <summary>Aborts every open connection of a peer in <paramref name="revoked"/>, after that list was published.</summary>
    public void CloseRevoked(FrozenSet<string> revoked)
    {
        var closed = 0;
        foreach (var (connection, peer) in _open)
        {
            if (revoked.Contains(peer))
            {
                connection.Abort(new ConnectionAbortedException($"{peer} was revoked"));
                closed++;
            }
        }
        LogApplied(logger, revoked.Count, closed);
    }

    public readonly struct Tracked(PeerConnections owner, ConnectionContext connection) : IDisposable
    {
        public void Dispose() => owner._open.TryRemove(connection, out _);
    }

    [LoggerMessage(EventId = 340, Level = LogLevel.Warning, Message = "revocation list applied: {Count} identities revoked; {Closed} open connections of revoked peers closed")]
    private static partial void LogApplied(ILogger logger, int count, int closed);
}
