using System.Net.Security;
using Grpc.Net.Client;
using MeshGuard.Contracts;
using MeshGuard.Proxy.Identity;

namespace MeshGuard.Proxy.ControlPlaneClient;

/// <summary>
/// The one gRPC channel to the control plane's mTLS port. TLS is done by <see cref="SpiffeConnector"/> (the
/// channel itself speaks HTTP/2 over the stream it returns), so a reconnect after rotation uses the new SVID
/// and the server must prove it is the control plane.
/// </summary>
internal sealed class ControlPlaneChannel : IDisposable
{
    private static readonly List<SslApplicationProtocol> Http2 = [SslApplicationProtocol.Http2];

    public ControlPlaneChannel(ProxySettings settings, WorkloadIdentity identity, SpiffeConnector connector)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            EnableMultipleHttp2Connections = true,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            ConnectCallback = (context, token) =>
                connector.ConnectAsync(context.DnsEndPoint, ControlPlaneIdentity.For(identity.Bundle.TrustDomain), Http2, token),
        };
        var address = new UriBuilder(settings.ControlPlaneGrpc) { Scheme = "http" }.Uri;
        Channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
        Identity = new MeshGuard.Contracts.V1.Identity.IdentityClient(Channel);
        Config = new MeshGuard.Contracts.V1.Config.ConfigClient(Channel);
        Witness = new MeshGuard.Contracts.V1.Witness.WitnessClient(Channel);
    }

    public GrpcChannel Channel { get; }

    public MeshGuard.Contracts.V1.Identity.IdentityClient Identity { get; }

    public MeshGuard.Contracts.V1.Config.ConfigClient Config { get; }

    public MeshGuard.Contracts.V1.Witness.WitnessClient Witness { get; }

    public void Dispose() => Channel.Dispose();
}
