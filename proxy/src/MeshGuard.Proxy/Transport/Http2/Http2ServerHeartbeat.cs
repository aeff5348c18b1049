using System.Collections.Concurrent;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// One timer for every server connection's deadlines (a preface or header block overdue, a connection idle too
/// long), as Kestrel's heartbeat: a connection costs no timer of its own, and a request costs no timer change.
/// </summary>
internal static class Http2ServerHeartbeat
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private static readonly ConcurrentDictionary<Http2ServerConnection, byte> Connections = new();
    private static ITimer? _timer;
    private static readonly Lock Sync = new();

    public static void Add(Http2ServerConnection connection)
    {
        Connections.TryAdd(connection, 0);
        if (Volatile.Read(ref _timer) is null)
        {
            lock (Sync)
            {
                _timer ??= TimeProvider.System.CreateTimer(static _ => Beat(), null, Interval, Interval);
            }
        }
    }

    public static void Remove(Http2ServerConnection connection) => Connections.TryRemove(connection, out _);

    private static void Beat()
    {
        var now = Environment.TickCount64;
        foreach (var connection in Connections.Keys)
        {
            connection.Tick(now);
        }
    }
}
