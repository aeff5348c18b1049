using System.Net;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Limits;
using Microsoft.AspNetCore.Connections;

namespace MeshGuard.Proxy.Inbound;

/// <summary>The inbound port as Kestrel binds it: an address that only <see cref="InboundTlsTransport"/> serves.</summary>
internal sealed class InboundTlsEndPoint(IPEndPoint address) : EndPoint
{
    public IPEndPoint Address { get; } = address;

    public override string ToString() => Address.ToString();
}

/// <summary>
/// Kestrel's transport for the inbound port: the sidecar accepts the peers' sockets and runs their TLS handshakes
/// itself, and hands Kestrel connections that are already authenticated, with the TLS stream on them
/// (<see cref="InboundTlsConnection"/>). An HTTP/2 peer is then served on that stream directly, without the socket
/// transport's pipes between the socket and TLS (a thread hand-off each way per read and per write); Kestrel keeps
/// what it is good at for this port: the listener's life, shutdown, HTTP/1.1 peers.
/// </summary>
internal sealed class InboundTlsTransport(ICredentialSource credentials, ConnectionLimits limits, TimeSpan handshakeTimeout, ILoggerFactory logging)
    : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    public bool CanBind(EndPoint endpoint) => endpoint is InboundTlsEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var listener = new InboundTlsListener((InboundTlsEndPoint)endpoint, credentials, limits.Inbound, handshakeTimeout, logging.CreateLogger<InboundTlsListener>());
        listener.Start();
        return ValueTask.FromResult<IConnectionListener>(listener);
    }
}
