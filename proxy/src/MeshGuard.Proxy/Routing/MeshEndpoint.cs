using System.Net;
using MeshGuard.Proxy.Outbound.Resilience;
using MeshGuard.Proxy.Transport.Http2;
using MeshGuard.Spiffe;

namespace MeshGuard.Proxy.Routing;

/// <summary>An inbound sidecar of a service: where to connect, who must answer there, and how it has been doing.</summary>
internal sealed class MeshEndpoint(string address, DnsEndPoint endPoint, SpiffeId identity, HttpMessageInvoker pool, Http2ConnectionPool peer, EndpointCircuit circuit)
{
    public string Address { get; } = address;

    /// <summary>"http://host:port": the forwarder's destination prefix, computed once.</summary>
    public string DestinationPrefix { get; } = "http://" + address;

    public DnsEndPoint EndPoint { get; } = endPoint;

    public SpiffeId Identity { get; } = identity;

    public string IdentityText { get; } = identity.ToString();

    /// <summary>The HttpClient pool of this endpoint's identity, for the requests YARP forwards.</summary>
    public HttpMessageInvoker Pool { get; } = pool;

    /// <summary>The sidecar's own HTTP/2 connections to this endpoint, for every other request.</summary>
    public Http2ConnectionPool Peer { get; } = peer;

    /// <summary>Passive health and tries in flight; kept across service tables while address and identity stay.</summary>
    public EndpointCircuit Circuit { get; } = circuit;
}
