namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// The HTTP/2 connections to one server: a peer sidecar (one address, one identity, over mTLS) or the local app
/// (cleartext, prior knowledge). A request takes a stream on the first connection with room under the server's
/// stream limit; when none has room, one caller at a time dials another, and the others wait for it rather than
/// dialling too. Connections the server closed or sent GOAWAY on are dropped once their streams ended; connections
/// idle for <see cref="IdleTimeout"/> are closed by <see cref="TrimAsync"/>. What a connection runs over is the
/// dialler's business: it returns a connected stream, or throws what connecting threw.
/// </summary>
internal sealed class Http2ConnectionPool(Func<CancellationToken, ValueTask<Stream>> dial, string server) : IAsyncDisposable
{
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    private readonly SemaphoreSlim _dialing = new(1, 1);
    private Http2ClientConnection[] _connections = [];

    /// <summary>
    /// Opens a stream carrying the head <paramref name="writeFields"/> writes. Throws what connecting threw (for a peer
    /// sidecar, a wrong identity, a socket or TLS failure), or a cancellation when the 5 s to connect ran out.
    /// </summary>
    public async ValueTask<Http2ClientStream> OpenStreamAsync<TState>(
        Action<TState, HpackEncoder, System.Buffers.IBufferWriter<byte>> writeFields, TState state, bool endStream, bool moreToCome, CancellationToken cancellation)
    {
        var opened = TryOpen(writeFields, state, endStream, moreToCome);
        if (opened is not null)
        {
            return opened;
        }
        await _dialing.WaitAsync(cancellation);
        try
        {
            // Another caller may have dialled while this one waited.
            opened = TryOpen(writeFields, state, endStream, moreToCome);
            if (opened is not null)
            {
                return opened;
            }
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            timeout.CancelAfter(ConnectTimeout);
            var transport = await dial(timeout.Token);
            var connection = await Http2ClientConnection.OpenAsync(transport, timeout.Token);
            lock (_dialing)
            {
                _connections = [.. _connections, connection];
            }
            return connection.TryOpenStream(writeFields, state, endStream, moreToCome)
                ?? throw new Http2StreamException(Http2ErrorCode.RefusedStream, $"a new connection to {server} takes no stream", notProcessed: true);
        }
        finally
        {
            _dialing.Release();
        }
    }

    /// <summary>
    /// Closes connections that failed, were told to go away, or sat idle; called by a timer, never per request. Each is
    /// closed on its own: one that fails to close (it had failed already) does not leave the others open.
    /// </summary>
    public async Task TrimAsync(long now)
    {
        List<Http2ClientConnection> closing = [];
        lock (_dialing)
        {
            var keep = new List<Http2ClientConnection>(_connections.Length);
            foreach (var connection in _connections)
            {
                var idle = connection.ActiveStreams == 0;
                if (idle && (connection.IsClosing || now - connection.IdleSince > (long)IdleTimeout.TotalMilliseconds))
                {
                    closing.Add(connection);
                }
                else
                {
                    keep.Add(connection);
                }
            }
            if (closing.Count == 0)
            {
                return;
            }
            _connections = [.. keep];
        }
        foreach (var connection in closing)
        {
            try
            {
                await connection.DisposeAsync();
            }
            catch (Exception)
            {
                // A connection that already failed: it is out of the pool either way.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http2ClientConnection[] all;
        lock (_dialing)
        {
            all = _connections;
            _connections = [];
        }
        foreach (var connection in all)
        {
            await connection.DisposeAsync();
        }
    }

    private Http2ClientStream? TryOpen<TState>(Action<TState, HpackEncoder, System.Buffers.IBufferWriter<byte>> writeFields, TState state, bool endStream, bool moreToCome)
    {
        foreach (var connection in Volatile.Read(ref _connections))
        {
            if (!connection.IsClosing && connection.TryOpenStream(writeFields, state, endStream, moreToCome) is { } stream)
            {
                return stream;
            }
        }
        return null;
    }
}
