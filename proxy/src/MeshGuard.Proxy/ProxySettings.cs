using System.Net;
using MeshGuard.Proxy.Transport;

namespace MeshGuard.Proxy;

/// <summary>What meshguard-proxy was started with, after the flags and MESHGUARD_* variables were read.</summary>
internal sealed record ProxySettings(
    IReadOnlyList<Uri> ControlPlaneBootstraps,
    IReadOnlyList<Uri> ControlPlaneGrpcs,
    string ControlPlaneBundleFile,
    string? JoinToken,
    string Service,
    IPAddress AppAddress,
    int AppPort,
    MeshGuard.Proxy.Protocols.AppProtocol AppProtocol,
    IPAddress InboundAddress,
    int InboundPort,
    int OutboundPort,
    int AdminPort,
    int MetricsPort,
    string AdvertiseAddress,
    string? StateDirectory,
    int[] OpaquePorts,
    IReadOnlyList<MeshGuard.Proxy.Outbound.OutboundTcpMapping> OutboundTcp,
    TimeSpan ProtocolDetectTimeout,
    MeshGuard.Proxy.Limits.ListenerLimits Limits,
    MeshGuard.Proxy.Outbound.Resilience.OutboundResilience Resilience,
    MeshGuard.Proxy.FlowLog.FlowLogSettings FlowLog,
    bool OutboundPassthrough = true,
    string? ServiceAccountTokenFile = null,
    MeshGuard.Policy.Requests.PathNormalization? PathRules = null,
    MeshGuard.Proxy.Transport.ForwardedHeaders ForwardedHeaders = MeshGuard.Proxy.Transport.ForwardedHeaders.Remove)
{
    /// <summary>How inbound request paths are made canonical (--path-normalization).</summary>
    public MeshGuard.Policy.Requests.PathNormalization PathNormalization => PathRules ?? MeshGuard.Policy.Requests.PathNormalization.Default;
}
