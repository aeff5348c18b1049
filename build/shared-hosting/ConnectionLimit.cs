using Microsoft.AspNetCore.Connections;

namespace MeshGuard.Hosting;

/// <summary>
/// At most <c>max</c> open connections on one listener. It runs before TLS, so a connection over the limit
/// costs no handshake: it is closed at once and counted; it also bounds the handshakes in flight on that
/// listener. The admin and metrics ports are outside it, so an operator can still see a process that is full.
/// Shared by meshguard-proxy (its data listeners) and meshguard-cp (its TLS ports).
/// </summary>
internal sealed class ConnectionLimit(string listener, int max)
{
    private long _open;
    private long _refused;

    public string Listener { get; } = listener;

    public long Open => Interlocked.Read(ref _open);

    public long Refused => Interlocked.Read(ref _refused);

    public void Apply(IConnectionBuilder listen) => listen.Use(next => connection => AdmitAsync(connection, next));

    /// <summary>
    /// Takes a place for a connection about to be served (a listener that accepts its sockets itself asks before its
    /// handshake); false, counted as refused, when the listener is full. Each place taken is given back with <see cref="Leave"/>.
    /// </summary>
    public bool TryEnter()
    {
        if (Interlocked.Increment(ref _open) > max)
        {
            Interlocked.Decrement(ref _open);
            Interlocked.Increment(ref _refused);
            return false;
        }
        return true;
    }

    public void Leave() => Interlocked.Decrement(ref _open);

    private async Task AdmitAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        if (!TryEnter())
        {
            connection.Abort();
            return;
        }
        try
        {
            await next(connection);
        }
        finally
        {
            Leave();
        }
    }
}
