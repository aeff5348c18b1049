using System.Net;
using System.Net.Sockets;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>
/// Keep-alive connections to the local app, most recently used first (a warm connection is the likeliest to be
/// alive, and the cold ones at the bottom age out). Bounded: at most <see cref="MaxIdle"/> idle connections are
/// kept, none longer than <see cref="IdleTimeout"/>. Opening one is bounded by <see cref="ConnectTimeout"/>.
/// </summary>
internal sealed class AppConnectionPool(EndPoint app, TimeProvider time) : IDisposable
{
    public const int MaxIdle = 256;
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    /// <summary>An idle connection older than this is polled before use (the app may have closed it meanwhile).</summary>
    private static readonly TimeSpan CheckAfter = TimeSpan.FromSeconds(1);

    private readonly AppConnection?[] _idle = new AppConnection?[MaxIdle];
    private readonly Lock _lock = new();
    private int _count;
    private bool _disposed;

    public EndPoint App => app;

    /// <summary>An idle connection that still looks alive, or null: the caller then opens one.</summary>
    public AppConnection? TryRent()
    {
        while (true)
        {
            AppConnection? connection;
            lock (_lock)
            {
                if (_count == 0)
                {
                    return null;
                }
                connection = _idle[--_count];
                _idle[_count] = null;
            }
            var idle = time.GetElapsedTime(connection!.IdleSince);
            if (idle < CheckAfter || (idle < IdleTimeout && connection.LooksAlive()))
            {
                return connection;
            }
            connection.Dispose();
        }
    }

    public async ValueTask<AppConnection> OpenAsync(CancellationToken cancellation)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        timeout.CancelAfter(ConnectTimeout);
        return new AppConnection(await TcpDial.ConnectAsync(app, timeout.Token));
    }

    /// <summary>Takes back a connection whose last exchange ended cleanly; one it cannot keep is closed.</summary>
    public void Return(AppConnection connection)
    {
        connection.Uses++;
        connection.IdleSince = time.GetTimestamp();
        AppConnection? expired = null;
        lock (_lock)
        {
            if (!_disposed && _count < MaxIdle)
            {
                // The coldest connection ages out here, so a pool that shrinks from a burst does not keep its peak.
                if (_count > 0 && time.GetElapsedTime(_idle[0]!.IdleSince) > IdleTimeout)
                {
                    expired = _idle[0];
                    Array.Copy(_idle, 1, _idle, 0, _count - 1);
                    _count--;
                }
                _idle[_count++] = connection;
                connection = null!;
            }
        }
        expired?.Dispose();
        connection?.Dispose();
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            for (var i = 0; i < _count; i++)
            {
                _idle[i]!.Dispose();
                _idle[i] = null;
            }
            _count = 0;
        }
    }
}
