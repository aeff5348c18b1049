using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane;
using MeshGuard.ControlPlane.Attestation;
using MeshGuard.ControlPlane.Commands;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.Kubernetes;
using MeshGuard.Policy.Engine;

var data = CliOption.Text("--data", "control-plane data directory (CA, tokens); created if missing");
var trustDomain = CliOption.Text("--trust-domain", "SPIFFE trust domain", "mesh.local");
var bind = CliOption.Text("--bind-address", "address of the bootstrap and gRPC listeners", "127.0.0.1");
var bootstrapPort = CliOption.Port("--bootstrap-port", "bootstrap port: join token + CSR in, SVID out (TLS)", 15012);
var grpcPort = CliOption.Port("--grpc-port", "gRPC port: SVID renewal and the service stream (mTLS)", 15010);
var adminPort = CliOption.Port("--admin-port", "admin port on 127.0.0.1: /healthz /readyz /metrics", 15014);
var webhookPort = CliOption.Port("--webhook-port", "the Kubernetes sidecar-injection webhook (HTTPS: POST /inject, admission.k8s.io/v1 AdmissionReview)", 15017);
var svidTtl = CliOption.Duration("--svid-ttl", "lifetime of issued SVIDs", TimeSpan.FromHours(1));
var defaultPolicy = CliOption.Text("--default-policy", "for workloads no policy selects: deny | allow-authenticated | allow", "deny");
var policySource = CliOption.Text("--policy-source", "where AccessPolicies come from: files (DATA/policies/*.yaml) or kubernetes (AccessPolicy objects, list+watch)", SourceKinds.Name(PolicySourceKind.Files));
var endpointSource = CliOption.Text("--endpoint-source", "where the service table comes from: attestation (what sidecars register) or kubernetes (meshed pods, list+watch; the same for every replica)", SourceKinds.Name(EndpointSourceKind.Attestation));
var revocationSource = CliOption.Text("--revocation-source", "where the revocation list comes from: files (DATA/revocations.txt) or kubernetes (the ConfigMap meshguard-revocations in --namespace, watched)", SourceKinds.Name(RevocationSourceKind.Files));
var ns = CliOption.Text("--namespace", "the control plane's own namespace in a cluster; default: the pod's, else meshguard");
var publishBundle = CliOption.Flag("--publish-bundle", "in a cluster: write the trust bundle as the ConfigMap meshguard-ca-bundle into every namespace labelled meshguard.io/inject=enabled");
var kubeconfig = CliOption.Text("--kubeconfig", "with --policy-source kubernetes: a kubeconfig file; default: the pod's service account, else ~/.kube/config");
var saIssuer = CliOption.Text("--sa-issuer", "accept projected Kubernetes service-account tokens from this issuer (its 'iss') in place of join tokens");
var saAudience = CliOption.Text("--sa-audience", "the audience those tokens must carry", ServiceAccountIssuer.DefaultAudience);
var saJwksFile = CliOption.Text("--sa-jwks-file", "the issuer's keys as a JWKS file (the API server's /openid/v1/jwks); read again when it changes");
var saDiscovery = CliOption.Text("--sa-oidc-discovery", "the issuer's OIDC discovery URL (https; .../.well-known/openid-configuration), read every minute");
var saDiscoveryCa = CliOption.Text("--sa-oidc-ca", "PEM CA file that the discovery and JWKS URLs are checked against (default: the system's)");
var saDiscoveryToken = CliOption.Text("--sa-oidc-token-file", "bearer token file for the discovery and JWKS URLs (the API server may require one)");
var sidecarImage = CliOption.Text("--sidecar-image", "the sidecar image the injection webhook adds to pods", MeshGuard.ControlPlane.Common.Injection.MeshGuardImages.Proxy);
var sidecarInitImage = CliOption.Text("--sidecar-init-image", "the init container image (the redirect rules) the webhook adds to pods", MeshGuard.ControlPlane.Common.Injection.MeshGuardImages.ProxyInit);
var sidecarCpus = CliOption.Number("--sidecar-cpus",
    $"the cores an injected sidecar sizes its threads for (1-{MeshGuard.ControlPlane.Common.Injection.SidecarInjector.MaxProxyCpus}), unless its pod's {MeshGuard.ControlPlane.Common.Injection.SidecarInjector.ProxyCpusAnnotation} says otherwise",
    new MeshGuard.ControlPlane.Common.Injection.InjectionTemplate().ProxyCpus);
var store = CliOption.Text("--store", "shared state for several replicas: etcd:http://HOST:2379[,more] (the CA, sealed; policies, registrations, join tokens, revocations); default: the data directory alone");
var flowStore = CliOption.Text("--flow-store", "the flow store every replica shares: postgres://USER:PASSWORD@HOST:PORT/DATABASE[?sslmode=require]; default: the data directory (flows/)");
var flowRetention = CliOption.Number("--flow-retention-days", "with --flow-store: days of received flow lines kept; older days are dropped whole", 30);
var flowAudit = CliOption.Duration("--flow-audit-interval", "with --flow-store: how often one replica re-hashes every stored chain, to catch lines changed in the database itself", TimeSpan.FromHours(1));
var storeKeyFile = CliOption.Text("--store-key-file", "with --store etcd: a 0600 file holding the key that seals the CA's keys (base64 of 32 bytes); default: the variable " + MeshGuard.Etcd.StoreKey.EnvironmentVariable);

var root = new RootCommand("meshguard-cp: the MeshGuard control plane (CA, attestation, service registry)")
{
    data, trustDomain, bind, bootstrapPort, grpcPort, adminPort, webhookPort, svidTtl, defaultPolicy,
    saIssuer, saAudience, saJwksFile, saDiscovery, saDiscoveryCa, saDiscoveryToken, policySource, kubeconfig, endpointSource, revocationSource, ns, publishBundle,
    store, storeKeyFile, sidecarImage, sidecarInitImage, sidecarCpus, flowStore, flowRetention, flowAudit,
};
root.SetAction(async (parse, cancellation) =>
{
    try
    {
        var settings = new ControlPlaneSettings(
            CliOption.Required(parse, data),
            parse.GetValue(trustDomain)!,
            parse.GetValue(bind)!,
            parse.GetValue(bootstrapPort),
            parse.GetValue(grpcPort),
            parse.GetValue(adminPort),
            parse.GetValue(webhookPort),
            parse.GetValue(svidTtl),
            MeshDefaults.TryParse(parse.GetValue(defaultPolicy), out var meshDefault)
                ? meshDefault
                : throw new CliUsageException($"--default-policy '{parse.GetValue(defaultPolicy)}' must be deny, allow-authenticated or allow"),
            ParseServiceAccountIssuer(parse),
            SourceKinds.Parse<PolicySourceKind>("--policy-source", parse.GetValue(policySource)),
            parse.GetValue(kubeconfig) is { Length: > 0 } kube ? Path.GetFullPath(kube) : null,
            SourceKinds.Parse<EndpointSourceKind>("--endpoint-source", parse.GetValue(endpointSource)),
            SourceKinds.Parse<RevocationSourceKind>("--revocation-source", parse.GetValue(revocationSource)),
            parse.GetValue(ns) is { Length: > 0 } own ? own : ClusterClient.OwnNamespace(),
            parse.GetValue(publishBundle),
            StoreFlag.Parse(parse.GetValue(store)),
            parse.GetValue(storeKeyFile) is { Length: > 0 } keyFile ? Path.GetFullPath(keyFile) : null,
            new MeshGuard.ControlPlane.Common.Injection.InjectionTemplate
            {
                Image = parse.GetValue(sidecarImage)!,
                InitImage = parse.GetValue(sidecarInitImage)!,
                ProxyCpus = CliOption.InRange(parse, sidecarCpus, 1, MeshGuard.ControlPlane.Common.Injection.SidecarInjector.MaxProxyCpus),
            },
            FlowStoreFlag.Parse(parse.GetValue(flowStore)),
            parse.GetValue(flowRetention) is >= 1 and var days ? days : throw new CliUsageException("--flow-retention-days must be at least 1"),
            parse.GetValue(flowAudit) is var audit && audit >= TimeSpan.FromSeconds(1) ? audit : throw new CliUsageException("--flow-audit-interval must be at least 1s"));
        if (settings.Store is not null && (settings.PolicySource != PolicySourceKind.Files || settings.EndpointSource != EndpointSourceKind.Attestation || settings.RevocationSource != RevocationSourceKind.Files))
        {
            throw new CliUsageException("--store etcd: keeps policies, registrations and revocations in etcd; leave --policy-source, --endpoint-source and --revocation-source at their defaults");
        }
        return await ControlPlaneHost.RunAsync(settings, cancellation);
    }
    catch (Exception e) when (e is CliUsageException or InsecureFileException or FormatException or InvalidOperationException or IOException or UnauthorizedAccessException)
    {
        await Console.Error.WriteLineAsync($"meshguard-cp: {e.Message}");
        return e is CliUsageException ? 2 : 1;
    }
});
root.Subcommands.Add(RotateRootCommand.Create());
root.Subcommands.Add(InitCommand.Create());

ServiceAccountIssuer? ParseServiceAccountIssuer(ParseResult parse)
{
    var jwks = parse.GetValue(saJwksFile) is { Length: > 0 } file ? Path.GetFullPath(file) : null;
    var discovery = parse.GetValue(saDiscovery) is { Length: > 0 } url ? url : null;
    if (parse.GetValue(saIssuer) is not { Length: > 0 } issuer)
    {
        return jwks is null && discovery is null ? null : throw new CliUsageException("--sa-jwks-file and --sa-oidc-discovery need --sa-issuer");
    }
    if ((jwks is null) == (discovery is null))
    {
        throw new CliUsageException("--sa-issuer needs the issuer's keys: exactly one of --sa-jwks-file or --sa-oidc-discovery");
    }
    Uri? discoveryUrl = null;
    if (discovery is not null && (!Uri.TryCreate(discovery, UriKind.Absolute, out discoveryUrl) || !ServiceAccountIssuerKeys.Allowed(discoveryUrl)))
    {
        throw new CliUsageException($"--sa-oidc-discovery '{discovery}' must be an https URL (http only on loopback)");
    }
    return new ServiceAccountIssuer(
        issuer, parse.GetValue(saAudience)!, jwks, discoveryUrl,
        parse.GetValue(saDiscoveryCa) is { Length: > 0 } ca ? Path.GetFullPath(ca) : null,
        parse.GetValue(saDiscoveryToken) is { Length: > 0 } token ? Path.GetFullPath(token) : null);
}

// The host handles SIGTERM and SIGINT itself and shuts down gracefully, exiting 0.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });


