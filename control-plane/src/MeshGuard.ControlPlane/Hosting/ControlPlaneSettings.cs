namespace MeshGuard.ControlPlane.Hosting;

/// <summary>What meshguard-cp was started with, after the flags and MESHGUARD_* variables were read.</summary>
internal sealed record ControlPlaneSettings(
    string DataDirectory,
    string TrustDomain,
    string BindAddress,
    int BootstrapPort,
    int GrpcPort,
    int AdminPort,
    int WebhookPort,
    TimeSpan SvidTtl,
    MeshGuard.Policy.Engine.MeshDefault MeshDefault,
    ServiceAccountIssuer? ServiceAccounts = null,
    string PolicySource = "files",
    string? KubeConfig = null,
    string EndpointSource = "attestation",
    string RevocationSource = "files",
    string Namespace = "meshguard",
    bool PublishBundle = false,
    MeshGuard.Store.StoreLocation? Store = null,
    string? StoreKeyFile = null,
    MeshGuard.Contracts.Injection.InjectionTemplate? Injection = null);
