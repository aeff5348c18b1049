using System.Net.Security;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Inbound;
using MeshGuard.Proxy.Routing;
using MeshGuard.Proxy.Transport;
using Microsoft.AspNetCore.Connections;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// An outbound TCP port (<c>--outbound-tcp LOCALPORT=service:port</c>): each connection the app opens to
/// 127.0.0.1:LOCALPORT goes to one endpoint of the service over mTLS (ALPN meshguard/tcp), which must
/// present the registered identity; the destination port travels in the preamble; then bytes flow.
/// </summary>
internal sealed partial class OpaqueTcpOutbound(
    SidecarConfigSource config, SpiffeConnector connector, MeshGuard.Proxy.Outbound.Resilience.OutboundResilience resilience, OutboundFlowRecorder recorder, ILogger<OpaqueTcpOutbound> logger)
{
    private static readonly List<SslApplicationProtocol> Protocols = [OpaqueTcp.Protocol];

    public async Task HandleAsync(ConnectionContext connection, OutboundTcpMapping mapping)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var cancellation = connection.ConnectionClosed;
        var route = config.Routes.Resolve(mapping.Service);
        if (route is null)
        {
            LogUnknownService(logger, mapping.Service);
            connection.Abort();
            return;
        }
        // Nothing has been sent before the connection stands, so a failed connect moves on to another endpoint.
        MeshEndpoint? endpoint = null;
        Stream? upstream = null;
        for (var attempt = 0; upstream is null; attempt++)
        {
            var candidate = route.Pick(avoid: endpoint);
            if (candidate is null || attempt == resilience.Attempts)
            {
                connection.Abort();
                recorder.Connection(route.Name, mapping.Port, endpoint, started, 0, 0);
                return;
            }
            endpoint = candidate;
            try
            {
                upstream = await connector.ConnectAsync(endpoint.EndPoint, endpoint.Identity, Protocols, cancellation);
            }
            catch (Exception e) when (e is PeerIdentityException or IOException or System.Net.Sockets.SocketException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
            {
                LogConnectFailed(logger, route.Name, endpoint.Address, e.Message);
                if (cancellation.IsCancellationRequested)
                {
                    connection.Abort();
                    recorder.Connection(route.Name, mapping.Port, endpoint, started, 0, 0);
                    return;
                }
            }
        }
        await using (upstream)
        {
            var preamble = new byte[OpaqueTcp.PreambleLength];
            OpaqueTcp.WritePreamble(preamble, mapping.Port);
            await upstream.WriteAsync(preamble, cancellation);
            await using var app = new DuplexStream(connection.Transport);
            var (fromApp, fromPeer) = await OpaqueTcp.PipeAsync(app, upstream, cancellation);
            recorder.Connection(route.Name, mapping.Port, endpoint, started, fromApp, fromPeer);
        }
    }

    [LoggerMessage(EventId = 210, Level = LogLevel.Warning, Message = "outbound tcp: no service {Service}")]
    private static partial void LogUnknownService(ILogger logger, string service);

    [LoggerMessage(EventId = 211, Level = LogLevel.Warning, Message = "outbound tcp: {Service} at {Address} refused: {Reason}")]
    private static partial void LogConnectFailed(ILogger logger, string service, string address, string reason);
}

/// <summary>
/// <c>LOCALPORT=service:port[/opaque]</c>: app connections to 127.0.0.1:LOCALPORT go to <c>service</c>; HTTP on
/// them is detected and goes as HTTP, other bytes go to port <c>port</c> as opaque TCP; <c>/opaque</c> skips detection.
/// </summary>
internal sealed record OutboundTcpMapping(int LocalPort, string Service, int Port, bool Opaque = false)
{
    private const string OpaqueSuffix = "/opaque";

    public static bool TryParse(string text, out OutboundTcpMapping? mapping, out string? error)
    {
        mapping = null;
        var opaque = text.EndsWith(OpaqueSuffix, StringComparison.Ordinal);
        if (opaque)
        {
            text = text[..^OpaqueSuffix.Length];
        }
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        var colon = text.LastIndexOf(':');
        if (equals <= 0 || colon <= equals + 1
            || !int.TryParse(text.AsSpan(0, equals), System.Globalization.CultureInfo.InvariantCulture, out var local) || local is < 1 or > 65535
            || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            error = $"--outbound-tcp '{text}' must be LOCALPORT=service:port[/opaque]";
            return false;
        }
        mapping = new OutboundTcpMapping(local, text[(equals + 1)..colon], port, opaque);
        error = null;
        return true;
    }
}
