using System.Net.Security;
using Grpc.Net.Client;
using MeshGuard.Contracts;
using MeshGuard.Proxy.Identity;

namespace MeshGuard.Proxy.ControlPlaneClient;

/// <summary>
/// The gRPC channels to the control plane's mTLS port, one per replica given (<c>--cp-grpc a,b</c>), of which
/// one is in use. TLS is done by <see cref="SpiffeConnector"/> (a channel speaks HTTP/2 over the stream it
/// returns), so a reconnect after rotation uses the new SVID and the server must prove it is the control plane.
/// A caller whose call failed asks <see cref="Failover"/> for the next replica: it says whether a replica not yet
/// tried since the last success is left, so that callers move on at once and back off only after a full round.
/// </summary>
internal sealed partial class ControlPlaneChannel : IDisposable
{
    private static readonly List<SslApplicationProtocol> Http2 = [SslApplicationProtocol.Http2];

    private readonly Replica[] _replicas;
    private readonly ILogger<ControlPlaneChannel> _logger;
    private int _current;
    private int _failedInARow;

    private sealed record Replica(
        Uri Address, GrpcChannel Channel, MeshGuard.Contracts.V1.Identity.IdentityClient Identity, MeshGuard.Contracts.V1.Config.ConfigClient Config,
        MeshGuard.Contracts.V1.Witness.WitnessClient Witness);

    public ControlPlaneChannel(ControlPlaneSettings settings, ICredentialSource credentials, SpiffeConnector connector, ILogger<ControlPlaneChannel> logger)
    {
        _logger = logger;
        _replicas = [.. settings.Grpcs.Select(grpc =>
        {
            var handler = new SocketsHttpHandler
            {
                UseProxy = false,
                EnableMultipleHttp2Connections = true,
                KeepAlivePingDelay = TimeSpan.FromSeconds(30),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
                ConnectTimeout = TimeSpan.FromSeconds(5),
                ConnectCallback = (context, token) =>
                    connector.ConnectAsync(context.DnsEndPoint, ControlPlaneIdentity.For(credentials.Current.Bundle.TrustDomain), Http2, token),
            };
            var channel = GrpcChannel.ForAddress(new UriBuilder(grpc) { Scheme = "http" }.Uri, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
            return new Replica(grpc, channel, new(channel), new(channel), new(channel));
        })];
    }

    private Replica Current => _replicas[Volatile.Read(ref _current) % _replicas.Length];

    /// <summary>The replica in use, to hand to <see cref="Failover"/> after a failed call.</summary>
    public int CurrentIndex => Volatile.Read(ref _current);

    public Uri CurrentAddress => Current.Address;

    public MeshGuard.Contracts.V1.Identity.IdentityClient Identity => Current.Identity;

    public MeshGuard.Contracts.V1.Config.ConfigClient Config => Current.Config;

    public MeshGuard.Contracts.V1.Witness.WitnessClient Witness => Current.Witness;

    /// <summary>A call to the replica in use succeeded.</summary>
    public void Succeeded() => Volatile.Write(ref _failedInARow, 0);

    /// <summary>
    /// A call to replica <paramref name="failed"/> (its <see cref="CurrentIndex"/>) failed: the next one is used
    /// from now on, unless another caller has moved on already. True while a replica not tried since the last
    /// success is left (try it now); false after a full round (back off first).
    /// </summary>
    public bool Failover(int failed)
    {
        var failures = Interlocked.Increment(ref _failedInARow);
        if (_replicas.Length > 1 && Interlocked.CompareExchange(ref _current, failed + 1, failed) == failed)
        {
            LogFailover(_logger, _replicas[failed % _replicas.Length].Address, Current.Address);
        }
        return failures < _replicas.Length;
    }

    public void Dispose()
    {
        foreach (var replica in _replicas)
        {
            replica.Channel.Dispose();
        }
    }

    [LoggerMessage(EventId = 112, Level = LogLevel.Warning, Message = "control plane at {Failed} failed; using {Next}")]
    private static partial void LogFailover(ILogger logger, Uri failed, Uri next);
}
