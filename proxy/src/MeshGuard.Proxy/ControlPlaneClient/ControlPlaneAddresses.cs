using System.Net.Http.Json;
using System.Text.Json;
using MeshGuard.Contracts;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Runtime;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.ControlPlaneClient;

/// <summary>
/// Where each control-plane replica's gRPC port is, asked of the replica itself: a sidecar is given one bootstrap
/// address per replica (<c>--cp</c>), and <c>GET /v1/bootstrap</c> on it names the gRPC port of the same host.
/// Asked once at start, of every replica at once, over the bootstrap port's server-only TLS (the answer comes from
/// the control plane's own SVID, so a stranger on the path cannot send the sidecar elsewhere). The answers are kept
/// in the state directory beside the SVID and the snapshot, so a sidecar restarted while the control plane is away
/// still knows where to find it when it comes back; a replica that does not answer and was never heard from is given
/// the conventional port. <c>--cp-grpc</c> overrides all of this.
/// </summary>
internal static partial class ControlPlaneAddresses
{
    public const int DefaultGrpcPort = 15010;

    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(3);

    /// <summary>The file in the state directory: one "BOOTSTRAP-URI GRPC-URI" line per replica that answered.</summary>
    public const string StateFileName = "control-plane-grpc.txt";

    public static async Task<IReadOnlyList<Uri>> GrpcOfAsync(
        IReadOnlyList<Uri> bootstraps, SpiffeConnector connector, TrustBundle controlPlaneBundle, string? stateDirectory, StateFileWriter stateFiles, ILogger logger,
        CancellationToken cancellation)
    {
        var stateFile = stateDirectory is null ? null : Path.Combine(stateDirectory, StateFileName);
        var known = ReadKnown(stateFile);
        using var client = connector.BootstrapClient(controlPlaneBundle, AskTimeout);
        var answered = new System.Collections.Concurrent.ConcurrentDictionary<Uri, Uri>();
        var grpc = await Task.WhenAll(bootstraps.Select(async bootstrap =>
        {
            string reason;
            try
            {
                var info = await client.GetFromJsonAsync(
                    new UriBuilder(bootstrap) { Scheme = "http", Path = Bootstrap.InfoPath }.Uri, ContractsJsonContext.Default.BootstrapInfo, cancellation);
                if (info is { GrpcPort: > 0 and < 65536 })
                {
                    return answered[bootstrap] = new UriBuilder(bootstrap) { Port = info.GrpcPort }.Uri;
                }
                reason = "its answer names no port";
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException && !cancellation.IsCancellationRequested)
            {
                reason = e.Message;
            }
            if (known.TryGetValue(bootstrap, out var remembered))
            {
                LogRemembered(logger, bootstrap, remembered, reason);
                return remembered;
            }
            LogAssumed(logger, bootstrap, DefaultGrpcPort, reason);
            return new UriBuilder(bootstrap) { Port = DefaultGrpcPort }.Uri;
        }));
        if (stateFile is not null && !answered.IsEmpty)
        {
            foreach (var (bootstrap, address) in answered)
            {
                known[bootstrap] = address;
            }
            stateFiles.Write(
                stateFile, string.Concat(known.OrderBy(static k => k.Key.ToString(), StringComparer.Ordinal).Select(static k => $"{k.Key} {k.Value}\n")), secret: false);
        }
        return grpc;
    }

    private static Dictionary<Uri, Uri> ReadKnown(string? stateFile)
    {
        var known = new Dictionary<Uri, Uri>();
        if (stateFile is null || !File.Exists(stateFile))
        {
            return known;
        }
        foreach (var line in File.ReadLines(stateFile))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && Uri.TryCreate(parts[0], UriKind.Absolute, out var bootstrap) && Uri.TryCreate(parts[1], UriKind.Absolute, out var grpc))
            {
                known[bootstrap] = grpc;
            }
        }
        return known;
    }

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "control plane at {Bootstrap} did not answer ({Reason}); using its gRPC address from the last start, {Grpc}")]
    private static partial void LogRemembered(ILogger logger, Uri bootstrap, Uri grpc, string reason);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "control plane at {Bootstrap} did not name its gRPC port ({Reason}); using port {Port} (--cp-grpc sets it)")]
    private static partial void LogAssumed(ILogger logger, Uri bootstrap, int port, string reason);
}
