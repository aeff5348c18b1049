using System.Collections.Concurrent;
using System.Collections.Frozen;
using Microsoft.AspNetCore.Connections;

namespace MeshGuard.Proxy.Authorization;

/// <summary>
/// The identities the control plane revoked (the snapshot's deny list), and the inbound connections open
/// now by peer, so that a revocation also ends what is already connected: a new connection from a revoked
/// peer is closed after its handshake, its requests on a connection still open get 403, and when a new list
/// arrives every connection of a newly revoked peer is aborted at once.
/// </summary>
internal sealed partial class RevokedIdentities(ILogger<RevokedIdentities> logger)
{
    private FrozenSet<string> _ids = FrozenSet<string>.Empty;
    private readonly ConcurrentDictionary<ConnectionContext, string> _open = new();

    public int Count => Volatile.Read(ref _ids).Count;

    /// <summary>One lookup; none at all while nothing is revoked (the usual case).</summary>
    public bool Contains(string spiffeId)
    {
        var ids = Volatile.Read(ref _ids);
        return ids.Count != 0 && ids.Contains(spiffeId);
    }

    public void Apply(IEnumerable<string> ids)
    {
        var next = ids.ToFrozenSet(StringComparer.Ordinal);
        var previous = Interlocked.Exchange(ref _ids, next);
        if (next.SetEquals(previous))
        {
            return;
        }
        var closed = 0;
        foreach (var (connection, peer) in _open)
        {
            if (next.Contains(peer))
            {
                connection.Abort(new ConnectionAbortedException($"{peer} was revoked"));
                closed++;
            }
        }
        LogApplied(logger, next.Count, closed);
    }

    /// <summary>Follows an inbound connection until it ends; dispose the result when it does.</summary>
    public Tracked Track(ConnectionContext connection, string peer)
    {
        _open[connection] = peer;
        return new Tracked(this, connection);
    }

    public readonly struct Tracked(RevokedIdentities owner, ConnectionContext connection) : IDisposable
    {
        public void Dispose() => owner._open.TryRemove(connection, out _);
    }

    [LoggerMessage(EventId = 340, Level = LogLevel.Warning, Message = "revocation list applied: {Count} identities revoked; {Closed} open connections of revoked peers closed")]
    private static partial void LogApplied(ILogger logger, int count, int closed);
}
