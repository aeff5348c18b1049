using System.Collections.Concurrent;

namespace MeshGuard.Proxy.Transport;

/// <summary>A server connection with deadlines of its own (a head overdue, a connection idle too long).</summary>
internal interface IHeartbeatTarget
{
    /// <summary>Called about once a second with <see cref="Environment.TickCount64"/>, on the timer's thread.</summary>
    void Tick(long now);
}

/// <summary>
/// One timer for every own server connection's deadlines, HTTP/2 and HTTP/1.1 alike, as Kestrel's heartbeat: a
/// connection costs no timer of its own, and a request costs no timer change.
/// </summary>
internal static class ServerHeartbeat
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private static readonly ConcurrentDictionary<IHeartbeatTarget, byte> Targets = new();
    private static ITimer? _timer;
    private static readonly Lock Sync = new();

    public static void Add(IHeartbeatTarget target)
    {
        Targets.TryAdd(target, 0);
        if (Volatile.Read(ref _timer) is null)
        {
            lock (Sync)
            {
                _timer ??= TimeProvider.System.CreateTimer(static _ => Beat(), null, Interval, Interval);
            }
        }
    }

    public static void Remove(IHeartbeatTarget target) => Targets.TryRemove(target, out _);

    private static void Beat()
    {
        var now = Environment.TickCount64;
        foreach (var target in Targets.Keys)
        {
            target.Tick(now);
        }
    }
}
