using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Threading.Channels;
using MeshGuard.Proxy.Identity;
using Microsoft.AspNetCore.Connections;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// Accepts the inbound port's sockets and authenticates each with the current SVID's TLS options (a client SVID
/// required), handshakes running side by side; Kestrel accepts the connections whose handshake succeeded. The
/// listener's connection limit is taken before the handshake, so a connection over it costs none.
/// </summary>
internal sealed partial class InboundTlsListener(InboundTlsEndPoint endpoint, ICredentialSource credentials, MeshGuard.Hosting.ConnectionLimit limit, TimeSpan handshakeTimeout, ILogger<InboundTlsListener> logger)
    : IConnectionListener
{
    private readonly Socket _socket = new(endpoint.Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
    private readonly Channel<InboundTlsConnection> _ready = Channel.CreateUnbounded<InboundTlsConnection>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();
    private long _nextId;

    public EndPoint EndPoint { get; private set; } = endpoint;

    public void Start()
    {
        if (endpoint.Address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            _socket.DualMode = endpoint.Address.Address.Equals(IPAddress.IPv6Any);
        }
        _socket.Bind(endpoint.Address);
        _socket.Listen(512);
        // Port 0 binds a free port: the endpoint then names the one bound.
        EndPoint = new InboundTlsEndPoint((IPEndPoint)_socket.LocalEndPoint!);
        _ = AcceptLoopAsync();
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var socket = await _socket.AcceptAsync(_stopping.Token);
                if (!limit.TryEnter())
                {
                    socket.Dispose();
                    continue;
                }
                socket.NoDelay = true;
                _ = HandshakeAsync(socket, Interlocked.Increment(ref _nextId));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Unbound.
        }
        finally
        {
            _ready.Writer.TryComplete();
        }
    }

    private async Task HandshakeAsync(Socket socket, long id)
    {
        var remote = socket.RemoteEndPoint as IPEndPoint;
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true), leaveInnerStreamOpen: false);
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            deadline.CancelAfter(handshakeTimeout);
            await tls.AuthenticateAsServerAsync(credentials.Current.InboundTls, deadline.Token);
        }
        catch (Exception e)
        {
            LogHandshakeFailed(logger, remote, e.Message);
            await tls.DisposeAsync();
            limit.Leave();
            return;
        }
        var connection = new InboundTlsConnection(tls, socket, id, limit);
        if (!_ready.Writer.TryWrite(connection))
        {
            await connection.DisposeAsync();
        }
    }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await _ready.Reader.ReadAsync(cancellationToken);
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _stopping.Cancel();
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync();
        while (_ready.Reader.TryRead(out var waiting))
        {
            await waiting.DisposeAsync();
        }
        _stopping.Dispose();
    }

    [LoggerMessage(EventId = 305, Level = LogLevel.Debug, Message = "inbound: TLS handshake with {Remote} failed: {Reason}")]
    private static partial void LogHandshakeFailed(ILogger logger, IPEndPoint? remote, string reason);
}
