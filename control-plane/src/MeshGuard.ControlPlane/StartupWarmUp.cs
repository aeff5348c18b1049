using System.Diagnostics;
using System.Net;
using System.Net.Security;
using Grpc.Core;
using Grpc.Net.Client;
using MeshGuard.Contracts;
using MeshGuard.Contracts.Snapshots;
using MeshGuard.Contracts.V1;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane;

/// <summary>
/// Once the ports are open, the control plane takes the paths a joining sidecar takes, on itself, so that the first
/// sidecar after a start does not wait while the runtime compiles them: the code of this build is precompiled, but
/// not the generic code its requests instantiate (the first attestation and first config stream compiled some 600
/// methods, 80 ms of the first sidecar's 160-180 ms to ready; the second sidecar waits for none). Nothing it does is
/// seen as a workload: it reads the bootstrap port's public answer, opens a config stream as the control plane's own
/// identity (refused, since that names no workload, after the handshake, the HTTP/2 connection and the call's
/// dispatch), and builds and signs one snapshot for a name no workload can have without using it. Best effort: a port
/// that does not answer (another address, a slow start) only leaves the first sidecar slower.
/// </summary>
internal sealed partial class StartupWarmUp(
    ControlPlaneSettings settings, ControlPlaneCredentials credentials, CertificateAuthority ca, ConfigDistributor distributor,
    SnapshotBuilder snapshots, IHostApplicationLifetime lifetime, TimeProvider time, ILogger<StartupWarmUp> logger) : BackgroundService
{
    private static readonly TimeSpan CallLimit = TimeSpan.FromSeconds(3);

    private readonly SpiffeId _self = ControlPlaneIdentity.For(ca.TrustDomain);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        using (stoppingToken.Register(() => started.TrySetCanceled()))
        {
            try
            {
                await started.Task;
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
        var clock = Stopwatch.StartNew();
        var outcome = "snapshot";
        try
        {
            SignSnapshot();
            var address = SelfAddress(settings.BindAddress);
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            limit.CancelAfter(CallLimit);
            await ReadBootstrapInfoAsync(address, limit.Token);
            outcome += ", bootstrap";
            await OpenRefusedStreamAsync(address, limit.Token);
            outcome += ", config stream";
            LogWarmedUp(logger, outcome, clock.Elapsed.TotalMilliseconds);
        }
        catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
        {
            LogNotWarmedUp(logger, outcome, e.Message);
        }
    }

    /// <summary>The address the control plane calls itself at: loopback where it listens on every address.</summary>
    internal static IPAddress SelfAddress(string bindAddress)
    {
        var address = IPAddress.Parse(bindAddress);
        return address.Equals(IPAddress.Any) ? IPAddress.Loopback : address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback : address;
    }

    // The snapshot of a name under the control plane's own path, which attestation never issues (a workload's ID is
    // ns/NS/sa/SA): the parts every stream shares are built as the first stream would, and the bytes are dropped.
    private void SignSnapshot()
    {
        var content = snapshots.Build(distributor.Current, _self.ToString(), "", "");
        _ = SnapshotSignature.SignContent(content, credentials.Svid);
    }

    private async Task ReadBootstrapInfoAsync(IPAddress address, CancellationToken cancellation)
    {
        using var handler = Handler(svid: null, SslApplicationProtocol.Http11);
        using var client = new HttpClient(handler);
        using var response = await client.GetAsync(new UriBuilder("https", address.ToString(), settings.BootstrapPort, Bootstrap.InfoPath).Uri, cancellation);
        response.EnsureSuccessStatusCode();
        _ = await response.Content.ReadAsByteArrayAsync(cancellation);
    }

    private async Task OpenRefusedStreamAsync(IPAddress address, CancellationToken cancellation)
    {
        using var channel = GrpcChannel.ForAddress(new UriBuilder("https", address.ToString(), settings.GrpcPort).Uri,
            new GrpcChannelOptions { HttpHandler = Handler(credentials.Svid, SslApplicationProtocol.Http2), DisposeHttpClient = true });
        using var call = new Config.ConfigClient(channel).Watch(new WatchConfigRequest(), cancellationToken: cancellation);
        try
        {
            await call.ResponseStream.MoveNext(cancellation);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.PermissionDenied)
        {
            return; // as expected: the control plane's own identity names no workload
        }
        throw new InvalidOperationException("the config stream did not refuse the control plane's own identity");
    }

    private SocketsHttpHandler Handler(X509Svid? svid, SslApplicationProtocol protocol) => new()
    {
        ConnectTimeout = CallLimit,
        UseProxy = false,
        SslOptions = SvidTls.CreateClientOptions(svid, ca.Bundle, _self, time, [protocol], new ServerVerificationOutcome()),
    };

    [LoggerMessage(EventId = 70, Level = LogLevel.Information, Message = "warmed up ({Paths}) in {Milliseconds:F0} ms")]
    private static partial void LogWarmedUp(ILogger logger, string paths, double milliseconds);

    [LoggerMessage(EventId = 71, Level = LogLevel.Information, Message = "warm-up stopped after {Paths}: {Reason}")]
    private static partial void LogNotWarmedUp(ILogger logger, string paths, string reason);
}
