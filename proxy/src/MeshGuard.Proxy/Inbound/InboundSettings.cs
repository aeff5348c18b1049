using System.Net;

namespace MeshGuard.Proxy.Inbound;

/// <summary>What the inbound side needs of the sidecar's settings: the app it fronts and how requests reach it.</summary>
internal sealed record InboundSettings(
    string Service,
    IPAddress AppAddress,
    int AppPort,
    MeshGuard.Proxy.Protocols.AppProtocol AppProtocol,
    int[] OpaquePorts,
    MeshGuard.Policy.Requests.PathNormalization PathNormalization,
    MeshGuard.Proxy.Transport.ForwardedHeaders ForwardedHeaders);
