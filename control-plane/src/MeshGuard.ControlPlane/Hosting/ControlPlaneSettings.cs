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
    PolicySourceKind PolicySource = PolicySourceKind.Files,
    string? KubeConfig = null,
    EndpointSourceKind EndpointSource = EndpointSourceKind.Attestation,
    RevocationSourceKind RevocationSource = RevocationSourceKind.Files,
    string Namespace = "meshguard",
    bool PublishBundle = false,
    MeshGuard.Etcd.StoreLocation? Store = null,
    string? StoreKeyFile = null,
    MeshGuard.ControlPlane.Common.Injection.InjectionTemplate? Injection = null,
    MeshGuard.FlowStore.FlowStoreLocation? FlowStore = null,
    int FlowRetentionDays = 30,
    TimeSpan? FlowAuditInterval = null);
