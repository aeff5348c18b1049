using System.Diagnostics;
using System.Net.Security;
using System.Security.Cryptography.Pkcs;
using Grpc.Core;
using Grpc.Net.Client;
using MeshGuard.Contracts;
using MeshGuard.Contracts.V1;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlaneScale;

/// <summary>
/// One simulated sidecar: its SVID, one mTLS HTTP/2 channel to its replica's gRPC port (as a sidecar has), and
/// the snapshot stream, whose versions it records with the moment each arrived. Snapshots are decoded, not
/// verified: the driver shares the machine with the control plane and should cost it as little as possible.
/// </summary>
internal sealed class SimulatedSidecar(int index, SpiffeId id, string service, string address, X509Svid svid, Uri grpc, TrustBundle bundle) : IDisposable
{
    private readonly Lock _gate = new();
    private readonly List<(long Version, long At)> _arrivals = [];
    private GrpcChannel? _channel;

    public int Index => index;

    public SpiffeId Id => id;

    public long Version { get; private set; }

    public X509Svid Svid => svid;

    /// <summary>The witness (flow-log upload) over the stream's channel, as a sidecar's uploader calls it.</summary>
    public Witness.WitnessClient Witness => new(_channel!);

    public string? StreamError { get; private set; }

    public void OpenStream(CancellationToken cancellation)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            SslOptions = SvidTls.CreateClientOptions(svid, bundle, ControlPlaneIdentity.For(bundle.TrustDomain), TimeProvider.System, [SslApplicationProtocol.Http2], new ServerVerificationOutcome()),
        };
        _channel = GrpcChannel.ForAddress(grpc, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true, MaxReceiveMessageSize = 16 * 1024 * 1024 });
        _ = FollowAsync(new Config.ConfigClient(_channel), cancellation);
    }

    private async Task FollowAsync(Config.ConfigClient client, CancellationToken cancellation)
    {
        try
        {
            using var call = client.Watch(new WatchConfigRequest { KnownVersion = 0 }, cancellationToken: cancellation);
            while (await call.ResponseStream.MoveNext(cancellation))
            {
                var at = Stopwatch.GetTimestamp();
                var cms = new SignedCms();
                cms.Decode(call.ResponseStream.Current.Cms.Span);
                var version = Snapshot.Parser.ParseFrom(cms.ContentInfo.Content).Version;
                lock (_gate)
                {
                    _arrivals.Add((version, at));
                    Version = version;
                }
            }
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or IOException)
        {
            StreamError = e.Message;
        }
    }

    /// <summary>When the first version above <paramref name="before"/> arrived (a Stopwatch timestamp), if it has.</summary>
    public long? FirstArrivalAbove(long before)
    {
        lock (_gate)
        {
            foreach (var (version, at) in _arrivals)
            {
                if (version > before)
                {
                    return at;
                }
            }
            return null;
        }
    }

    /// <summary>Renews over the stream's channel, as a sidecar's rotator does (registration refreshed).</summary>
    public async Task RenewAsync(CancellationToken cancellation)
    {
        using var key = SvidKey.CreateKey();
        var response = await new Identity.IdentityClient(_channel!).RenewAsync(
            new RenewRequest { CsrPem = SvidKey.CreateSigningRequestPem(key, id), Service = service, InboundAddress = address }, cancellationToken: cancellation);
        if (response.SpiffeId != id.ToString())
        {
            throw new InvalidOperationException($"sidecar {index} renewed as {response.SpiffeId}");
        }
    }

    public void Dispose()
    {
        _channel?.Dispose();
    }
}
