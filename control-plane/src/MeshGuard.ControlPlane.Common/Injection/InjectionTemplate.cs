namespace MeshGuard.ControlPlane.Common.Injection;

/// <summary>
/// What an injected sidecar is made of: its image, where the control plane is, the ports and user it runs
/// with, and its resources. The defaults are Istio's numbers where Istio has one (ports, uid 1337).
/// </summary>
public sealed record InjectionTemplate
{
    /// <summary>The sidecar's image: meshguard-proxy alone on a distroless base.</summary>
    public string Image { get; init; } = MeshGuardImages.Proxy;

    /// <summary>The init container's image: meshguard-proxy with iptables, which <c>redirect install</c> runs.</summary>
    public string InitImage { get; init; } = MeshGuardImages.ProxyInit;

    /// <summary>The control plane's bootstrap URL as pods reach it.</summary>
    public string ControlPlane { get; init; } = "https://meshguard-cp.meshguard.svc:15012";

    /// <summary>The ConfigMap holding the mesh trust bundle (bundle.pem), mounted into every sidecar.</summary>
    public string BundleConfigMap { get; init; } = "meshguard-ca-bundle";

    /// <summary>The uid the sidecar runs as; the redirect exempts its traffic by this uid.</summary>
    public int ProxyUid { get; init; } = 1337;

    public int InboundPort { get; init; } = 15006;

    public int OutboundPort { get; init; } = 15001;

    public int AdminPort { get; init; } = 15000;

    public int MetricsPort { get; init; } = 15020;

    /// <summary>The audience of the projected service-account token the sidecar attests with.</summary>
    public string TokenAudience { get; init; } = "meshguard";

    public string CpuRequest { get; init; } = "100m";

    public string MemoryRequest { get; init; } = "64Mi";

    public string MemoryLimit { get; init; } = "256Mi";

    /// <summary>
    /// The cores a sidecar sizes its threads for (the runtime's thread pool and one socket engine a core), unless the
    /// pod's <c>meshguard.io/proxy-cpus</c> names another count: 2, as Istio's default proxy concurrency. Without it the
    /// runtime would size a sidecar with no CPU limit for every core of its node.
    /// </summary>
    public int ProxyCpus { get; init; } = 2;

    /// <summary>The app port when the pod declares none (and no <c>meshguard.io/app-port</c> annotation).</summary>
    public int DefaultAppPort { get; init; } = 8080;
}
