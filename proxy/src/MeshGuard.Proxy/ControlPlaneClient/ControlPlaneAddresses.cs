using System.Net.Http.Json;
using System.Net.Security;
using System.Text.Json;
using MeshGuard.Contracts;
using MeshGuard.Proxy.Identity;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.ControlPlaneClient;

/// <summary>
/// Where each control-plane replica's gRPC port is, asked of the replica itself: a sidecar is given one bootstrap
/// address per replica (<c>--cp</c>), and <c>GET /v1/bootstrap</c> on it names the gRPC port of the same host.
/// Asked once at start, of every replica at once, over the bootstrap port's server-only TLS (the answer comes from
/// the control plane's own SVID, so a stranger on the path cannot send the sidecar elsewhere). A replica that does
/// not answer in time is given the conventional port; <c>--cp-grpc</c> overrides all of this.
/// </summary>
internal static partial class ControlPlaneAddresses
{
    public const int DefaultGrpcPort = 15010;

    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(3);
    private static readonly List<SslApplicationProtocol> Http11 = [SslApplicationProtocol.Http11];

    public static async Task<IReadOnlyList<Uri>> GrpcOfAsync(
        IReadOnlyList<Uri> bootstraps, SpiffeConnector connector, TrustBundle controlPlaneBundle, ILogger logger, CancellationToken cancellation)
    {
        var expected = ControlPlaneIdentity.For(controlPlaneBundle.TrustDomain);
        using var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectCallback = (context, token) => connector.ConnectAsync(context.DnsEndPoint, expected, Http11, svid: null, controlPlaneBundle, token),
        };
        using var client = new HttpClient(handler) { Timeout = AskTimeout };
        return await Task.WhenAll(bootstraps.Select(async bootstrap =>
        {
            string reason;
            try
            {
                var info = await client.GetFromJsonAsync(
                    new UriBuilder(bootstrap) { Scheme = "http", Path = Bootstrap.InfoPath }.Uri, ContractsJsonContext.Default.BootstrapInfo, cancellation);
                if (info is { GrpcPort: > 0 and < 65536 })
                {
                    return new UriBuilder(bootstrap) { Port = info.GrpcPort }.Uri;
                }
                reason = "its answer names no port";
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException && !cancellation.IsCancellationRequested)
            {
                reason = e.Message;
            }
            LogAssumed(logger, bootstrap, DefaultGrpcPort, reason);
            return new UriBuilder(bootstrap) { Port = DefaultGrpcPort }.Uri;
        }));
    }

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "control plane at {Bootstrap} did not name its gRPC port ({Reason}); using port {Port} (--cp-grpc sets it)")]
    private static partial void LogAssumed(ILogger logger, Uri bootstrap, int port, string reason);
}
