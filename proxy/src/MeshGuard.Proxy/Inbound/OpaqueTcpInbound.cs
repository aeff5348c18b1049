using System.Net;
using System.Net.Sockets;
using MeshGuard.Proxy.Transport;
using Microsoft.AspNetCore.Connections;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// An inbound mTLS connection that negotiated opaque TCP: 1. read the destination port; 2. it must be one
/// of the ports declared opaque (a port is HTTP or opaque, never both: the app's HTTP port never takes raw bytes,
/// whatever a peer asks for); 3. authorize the connection (port only: a deny rule that names methods, paths or
/// headers denies it, an allow rule that names them does not allow it); 4. connect to the app on that port and
/// pipe. A refused connection is closed before the app is dialled.
/// </summary>
internal sealed partial class OpaqueTcpInbound(InboundSettings settings, InboundAuthorizer authorizer, InboundFlowRecorder recorder, ILogger<OpaqueTcpInbound> logger)
{
    private static readonly TimeSpan PreambleTimeout = TimeSpan.FromSeconds(10);

    public async Task HandleAsync(ConnectionContext connection, PeerIdentityFeature peer)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var cancellation = connection.ConnectionClosed;
        await using var client = new DuplexStream(connection.Transport);

        // 1.
        var preamble = new byte[OpaqueTcp.PreambleLength];
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation))
        {
            timeout.CancelAfter(PreambleTimeout);
            try
            {
                await client.ReadExactlyAsync(preamble, timeout.Token);
            }
            catch (Exception e) when (e is EndOfStreamException or OperationCanceledException or IOException)
            {
                connection.Abort();
                return;
            }
        }
        var port = OpaqueTcp.ReadPreamble(preamble);

        // 2.
        if (Array.IndexOf(settings.OpaquePorts, port) < 0)
        {
            LogNotOpaque(logger, peer.Peer, port);
            connection.Abort();
            return;
        }

        // 3.
        var decision = authorizer.AuthorizeConnection(peer, port);
        if (!decision.IsAllowed)
        {
            connection.Abort();
            recorder.Connection(peer, port, started, decision, 0, 0);
            return;
        }

        // 4.
        using var app = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await app.ConnectAsync(new IPEndPoint(settings.AppAddress, port), cancellation);
        }
        catch (SocketException e)
        {
            LogAppUnreachable(logger, port, e.Message);
            connection.Abort();
            return;
        }
        await using var appStream = new NetworkStream(app, ownsSocket: false);
        var (fromCaller, fromApp) = await OpaqueTcp.PipeAsync(client, appStream, cancellation);
        recorder.Connection(peer, port, started, decision, fromCaller, fromApp);
    }

    [LoggerMessage(EventId = 320, Level = LogLevel.Warning, Message = "inbound tcp: {Caller} asked for port {Port}, which is not declared opaque")]
    private static partial void LogNotOpaque(ILogger logger, MeshGuard.Spiffe.SpiffeId caller, int port);

    [LoggerMessage(EventId = 321, Level = LogLevel.Warning, Message = "inbound tcp: app port {Port} unreachable: {Reason}")]
    private static partial void LogAppUnreachable(ILogger logger, int port, string reason);
}
