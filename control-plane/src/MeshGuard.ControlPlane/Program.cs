using System.CommandLine;
using System.Net;
using MeshGuard.CommandLine;
using MeshGuard.Contracts;
using MeshGuard.Contracts.DataDir;
using MeshGuard.ControlPlane;
using MeshGuard.ControlPlane.Admin;
using MeshGuard.ControlPlane.Attestation;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.ControlPlane.FlowCollection;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.Kubernetes;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.State;
using MeshGuard.ControlPlane.Store;
using MeshGuard.ControlPlane.Store.Etcd;
using MeshGuard.Hosting;
using MeshGuard.Policy.Engine;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

var data = CliOption.Text("--data", "control-plane data directory (CA, tokens); created if missing");
var trustDomain = CliOption.Text("--trust-domain", "SPIFFE trust domain", "mesh.local");
var bind = CliOption.Text("--bind-address", "address of the bootstrap and gRPC listeners", "127.0.0.1");
var bootstrapPort = CliOption.Port("--bootstrap-port", "bootstrap port: join token + CSR in, SVID out (TLS)", 15012);
var grpcPort = CliOption.Port("--grpc-port", "gRPC port: SVID renewal and the service stream (mTLS)", 15010);
var adminPort = CliOption.Port("--admin-port", "admin port on 127.0.0.1: /healthz /readyz /metrics", 15014);
var webhookPort = CliOption.Port("--webhook-port", "the Kubernetes sidecar-injection webhook (HTTPS: POST /inject, admission.k8s.io/v1 AdmissionReview)", 15017);
var svidTtl = CliOption.Duration("--svid-ttl", "lifetime of issued SVIDs", TimeSpan.FromHours(1));
var defaultPolicy = CliOption.Text("--default-policy", "for workloads no policy selects: deny | allow-authenticated | allow", "deny");
var policySource = CliOption.Text("--policy-source", "where AccessPolicies come from: files (DATA/policies/*.yaml) or kubernetes (AccessPolicy objects, list+watch)", "files");
var endpointSource = CliOption.Text("--endpoint-source", "where the service table comes from: attestation (what sidecars register) or kubernetes (meshed pods, list+watch; the same for every replica)", "attestation");
var revocationSource = CliOption.Text("--revocation-source", "where the revocation list comes from: files (DATA/revocations.txt) or kubernetes (the ConfigMap meshguard-revocations in --namespace, watched)", "files");
var ns = CliOption.Text("--namespace", "the control plane's own namespace in a cluster; default: the pod's, else meshguard");
var publishBundle = CliOption.Flag("--publish-bundle", "in a cluster: write the trust bundle as the ConfigMap meshguard-ca-bundle into every namespace labelled meshguard.io/inject=enabled");
var kubeconfig = CliOption.Text("--kubeconfig", "with --policy-source kubernetes: a kubeconfig file; default: the pod's service account, else ~/.kube/config");
var saIssuer = CliOption.Text("--sa-issuer", "accept projected Kubernetes service-account tokens from this issuer (its 'iss') in place of join tokens");
var saAudience = CliOption.Text("--sa-audience", "the audience those tokens must carry", ServiceAccountIssuer.DefaultAudience);
var saJwksFile = CliOption.Text("--sa-jwks-file", "the issuer's keys as a JWKS file (the API server's /openid/v1/jwks); read again when it changes");
var saDiscovery = CliOption.Text("--sa-oidc-discovery", "the issuer's OIDC discovery URL (https; .../.well-known/openid-configuration), read every minute");
var saDiscoveryCa = CliOption.Text("--sa-oidc-ca", "PEM CA file that the discovery and JWKS URLs are checked against (default: the system's)");
var saDiscoveryToken = CliOption.Text("--sa-oidc-token-file", "bearer token file for the discovery and JWKS URLs (the API server may require one)");
var sidecarImage = CliOption.Text("--sidecar-image", "the sidecar image the injection webhook adds to pods", MeshGuard.Contracts.Injection.MeshGuardImages.Proxy);
var sidecarInitImage = CliOption.Text("--sidecar-init-image", "the init container image (the redirect rules) the webhook adds to pods", MeshGuard.Contracts.Injection.MeshGuardImages.ProxyInit);
var store = CliOption.Text("--store", "shared state for several replicas: etcd:http://HOST:2379[,more] (the CA, sealed; policies, registrations, join tokens, revocations); default: the data directory alone");
var storeKeyFile = CliOption.Text("--store-key-file", "with --store etcd: a 0600 file holding the key that seals the CA's keys (base64 of 32 bytes); default: the variable " + MeshGuard.Store.StoreKey.EnvironmentVariable);

var root = new RootCommand("meshguard-cp: the MeshGuard control plane (CA, attestation, service registry)")
{
    data, trustDomain, bind, bootstrapPort, grpcPort, adminPort, webhookPort, svidTtl, defaultPolicy,
    saIssuer, saAudience, saJwksFile, saDiscovery, saDiscoveryCa, saDiscoveryToken, policySource, kubeconfig, endpointSource, revocationSource, ns, publishBundle,
    store, storeKeyFile, sidecarImage, sidecarInitImage,
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
            parse.GetValue(policySource) is "files" or "kubernetes" ? parse.GetValue(policySource)! : throw new CliUsageException($"--policy-source '{parse.GetValue(policySource)}' must be files or kubernetes"),
            parse.GetValue(kubeconfig) is { Length: > 0 } kube ? Path.GetFullPath(kube) : null,
            parse.GetValue(endpointSource) is "attestation" or "kubernetes" ? parse.GetValue(endpointSource)! : throw new CliUsageException($"--endpoint-source '{parse.GetValue(endpointSource)}' must be attestation or kubernetes"),
            parse.GetValue(revocationSource) is "files" or "kubernetes" ? parse.GetValue(revocationSource)! : throw new CliUsageException($"--revocation-source '{parse.GetValue(revocationSource)}' must be files or kubernetes"),
            parse.GetValue(ns) is { Length: > 0 } own ? own : ClusterClient.OwnNamespace(),
            parse.GetValue(publishBundle),
            ParseStore(parse.GetValue(store)),
            parse.GetValue(storeKeyFile) is { Length: > 0 } keyFile ? Path.GetFullPath(keyFile) : null,
            new MeshGuard.Contracts.Injection.InjectionTemplate { Image = parse.GetValue(sidecarImage)!, InitImage = parse.GetValue(sidecarInitImage)! });
        if (settings.Store is not null && (settings.PolicySource != "files" || settings.EndpointSource != "attestation" || settings.RevocationSource != "files"))
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
root.Subcommands.Add(RotateRootCommand());
root.Subcommands.Add(InitCommand());

static MeshGuard.Store.StoreLocation? ParseStore(string? text) =>
    string.IsNullOrEmpty(text) ? null : MeshGuard.Store.StoreLocation.Parse(text, out var error) ?? throw new CliUsageException("--store " + error);

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

// meshguard-cp init --data DIR [--store etcd:URL]: the CA (root and intermediate, keys 0600) and bundle, made once,
// for a cluster's Secret; with --store, that CA (an existing one too) is put into etcd, its keys sealed.
static Command InitCommand()
{
    var dataOption = CliOption.Text("--data", "directory to create the CA in (DIR/ca) and write the bundle (DIR/bundle.pem)");
    var trustDomainOption = CliOption.Text("--trust-domain", "SPIFFE trust domain", "mesh.local");
    var storeOption = CliOption.Text("--store", "also put the CA into this etcd (etcd:http://HOST:2379[,more]) for replicas started with --store");
    var storeKeyOption = CliOption.Text("--store-key-file", "with --store: the 0600 file of the key that seals the CA's keys; default: the variable " + MeshGuard.Store.StoreKey.EnvironmentVariable);
    var command = new Command("init", "make the mesh CA and bundle and exit (for the meshguard-ca Secret of a cluster install, or an etcd store)") { dataOption, trustDomainOption, storeOption, storeKeyOption };
    command.SetAction(async (parse, cancellation) =>
    {
        try
        {
            var directory = new DataDirectory(Path.GetFullPath(CliOption.Required(parse, dataOption)));
            var existed = Directory.Exists(directory.CaDirectory);
            Directory.CreateDirectory(directory.Root);
            var ca = CertificateAuthority.LoadOrCreate(directory, parse.GetValue(trustDomainOption)!, TimeProvider.System);
            SecureFile.WriteAtomically(directory.TrustBundle, ca.Bundle.ToPem(), secret: false);
            Console.WriteLine($"{(existed ? "kept the existing CA" : "made a CA")} for trust domain {ca.TrustDomain} in {directory.CaDirectory}; bundle {directory.TrustBundle}");
            if (ParseStore(parse.GetValue(storeOption)) is { } location)
            {
                using var etcd = new MeshGuard.Store.EtcdConnection(location);
                using var key = MeshGuard.Store.StoreKey.Load(parse.GetValue(storeKeyOption) is { Length: > 0 } file ? Path.GetFullPath(file) : null);
                var material = CertificateAuthority.ReadMaterial(directory);
                if (await EtcdCertificateAuthority.UploadAsync(etcd, key, material, ca.TrustDomain, cancellation))
                {
                    Console.WriteLine($"put the CA into {location} {MeshGuard.Store.EtcdKeys.Ca}, its keys sealed");
                }
                else if ((await MeshGuard.Store.CaDocument.ReadAsync(etcd, cancellation))?.RootPem.Trim() == material.RootPem.Trim())
                {
                    Console.WriteLine($"{location} holds this CA already");
                }
                else
                {
                    throw new InvalidOperationException($"{location} holds another CA; replicas take theirs from there. Remove {MeshGuard.Store.EtcdKeys.Ca} first to replace it");
                }
            }
            return 0;
        }
        catch (Exception e) when (e is CliUsageException or InsecureFileException or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            await Console.Error.WriteLineAsync($"meshguard-cp init: {e.Message}");
            return e is CliUsageException ? 2 : 1;
        }
    });
    return command;
}

// meshguard-cp rotate-root prepare|activate|retire --data DIR: the three steps of a root rotation (RootRotation).
static Command RotateRootCommand()
{
    var rotate = new Command("rotate-root", "rotate the mesh root with an overlapping bundle: prepare, activate, retire; restart the control plane after each step");
    foreach (var (name, description, step) in new (string, string, Func<DataDirectory, TimeProvider, string>)[]
    {
        ("prepare", "make the next root; the bundle holds both (the old one still signs)", RootRotation.Prepare),
        ("activate", "the next root signs from now; the old one stays trusted until retired", RootRotation.Activate),
        ("retire", "take the old roots out of the bundle and delete their keys", RootRotation.Retire),
    })
    {
        var dataOption = CliOption.Text("--data", "control-plane data directory");
        var command = new Command(name, description) { dataOption };
        command.SetAction(parse =>
        {
            try
            {
                var directory = new DataDirectory(CliOption.Required(parse, dataOption));
                directory.RequireExists();
                Console.WriteLine(step(directory, TimeProvider.System));
                return 0;
            }
            catch (Exception e) when (e is CliUsageException or InsecureFileException or InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"meshguard-cp rotate-root {name}: {e.Message}");
                return e is CliUsageException ? 2 : 1;
            }
        });
        rotate.Subcommands.Add(command);
    }
    return rotate;
}

namespace MeshGuard.ControlPlane
{
    internal static class ControlPlaneHost
    {
        public static async Task<int> RunAsync(ControlPlaneSettings settings, CancellationToken cancellation)
        {
            if (!MeshGuard.Spiffe.SpiffeId.TryParse(MeshGuard.Spiffe.SpiffeId.Scheme + settings.TrustDomain, out _, out var tdError))
            {
                throw new CliUsageException($"--trust-domain '{settings.TrustDomain}': {tdError}");
            }
            if (!IPAddress.TryParse(settings.BindAddress, out var bindAddress))
            {
                throw new CliUsageException($"--bind-address '{settings.BindAddress}' is not an IP address");
            }
            var dataDirectory = new DataDirectory(settings.DataDirectory);
            Directory.CreateDirectory(dataDirectory.Root);
            var time = TimeProvider.System;
            using var etcd = settings.Store is { } location ? new MeshGuard.Store.EtcdConnection(location) : null;
            var opened = etcd is null ? null : await EtcdStoreServices.OpenAsync(etcd, settings, time, cancellation);
            var ca = opened?.Ca ?? CertificateAuthority.LoadOrCreate(dataDirectory, settings.TrustDomain, time);
            SecureFile.WriteAtomically(dataDirectory.TrustBundle, ca.Bundle.ToPem(), secret: false);
            // A port another process holds ends the start here, before the sources are read (up to 30 s each).
            PortsInUse.ThrowIfAnyTaken([
                ("--bootstrap-port", new IPEndPoint(bindAddress, settings.BootstrapPort)), ("--grpc-port", new IPEndPoint(bindAddress, settings.GrpcPort)),
                ("--webhook-port", new IPEndPoint(bindAddress, settings.WebhookPort)), ("--admin-port", new IPEndPoint(IPAddress.Loopback, settings.AdminPort))]);

            var builder = WebApplication.CreateSlimBuilder();
            ServerLogging.Configure(builder.Logging);
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
            builder.Services.AddSingleton(settings);
            builder.Services.AddSingleton(time);
            builder.Services.AddSingleton(ca);
            builder.Services.AddSingleton(dataDirectory);
            // With etcd, the registry is etcd's registrations (EtcdMeshSync), not a file of this replica's.
            // Secure naming: which identities may serve a service, from the data directory's file or etcd's text.
            builder.Services.AddSingleton(sp => new ServiceBindingStore(dataDirectory, time, sp.GetRequiredService<ILogger<ServiceBindingStore>>(), fromFile: etcd is null));
            builder.Services.AddHostedService(sp => sp.GetRequiredService<ServiceBindingStore>());
            builder.Services.AddSingleton(sp => new SecureNaming(sp.GetRequiredService<ServiceBindingStore>(), settings.SvidTtl, time));
            builder.Services.AddSingleton(sp => etcd is null
                ? new ServiceRegistry(dataDirectory, acceptsRegistrations: settings.EndpointSource != "kubernetes", sp.GetRequiredService<SecureNaming>(), time)
                : new ServiceRegistry());
            if (etcd is null)
            {
                builder.Services.AddSingleton<IJoinTokens>(new JoinTokenStore(dataDirectory.Root, time));
                builder.Services.AddSingleton<IEndpointRegistrar>(sp => sp.GetRequiredService<ServiceRegistry>());
                builder.Services.AddSingleton<IWitnessRecords>(new WitnessFiles(dataDirectory));
            }
            else
            {
                builder.Services.AddEtcdStore(etcd, opened!);
            }
            // Made on first use, and only when a source reads the cluster.
            builder.Services.AddSingleton(_ => ClusterClient.Create(settings.KubeConfig));
            if (settings.EndpointSource == "kubernetes")
            {
                builder.Services.AddSingleton(sp =>
                {
                    var cluster = sp.GetRequiredService<ClusterConnection>();
                    return new MeshGuard.ControlPlane.Registry.KubernetesEndpointSource(
                        cluster.Client, cluster.Server, sp.GetRequiredService<ServiceRegistry>(), settings.TrustDomain, time, sp.GetRequiredService<ILogger<MeshGuard.ControlPlane.Registry.KubernetesEndpointSource>>());
                });
                builder.Services.AddHostedService(sp => sp.GetRequiredService<MeshGuard.ControlPlane.Registry.KubernetesEndpointSource>());
                builder.Services.AddSingleton<SyncedWatchService>(sp => sp.GetRequiredService<MeshGuard.ControlPlane.Registry.KubernetesEndpointSource>());
            }
            builder.Services.AddSingleton<IPolicySource>(sp => settings.PolicySource == "kubernetes"
                ? new KubernetesPolicySource(sp.GetRequiredService<ClusterConnection>().Client, sp.GetRequiredService<ClusterConnection>().Server, time,
                    sp.GetRequiredService<ILogger<KubernetesPolicySource>>())
                : etcd is null ? new PolicyFileSource(dataDirectory, time) : sp.GetRequiredService<EtcdPolicySource>());
            builder.Services.AddSingleton<PolicyStore>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<PolicyStore>());
            builder.Services.AddSingleton<SyncedWatchService>(sp => sp.GetRequiredService<PolicyStore>());
            if (etcd is not null)
            {
                // After the state and the policy store, so that its first read finds both.
                builder.Services.AddSingleton<EtcdMeshSync>();
                builder.Services.AddHostedService(sp => sp.GetRequiredService<EtcdMeshSync>());
                builder.Services.AddSingleton<SyncedWatchService>(sp => sp.GetRequiredService<EtcdMeshSync>());
            }
            builder.Services.AddSingleton(sp => new RevocationStore(dataDirectory, time, sp.GetRequiredService<ILogger<RevocationStore>>(), fromFile: settings.RevocationSource == "files" && etcd is null));
            builder.Services.AddHostedService(sp => sp.GetRequiredService<RevocationStore>());
            if (settings.PublishBundle)
            {
                builder.Services.AddHostedService(sp => new BundlePublisher(
                    sp.GetRequiredService<ClusterConnection>().Client, ca, time,
                    sp.GetRequiredService<ILogger<BundlePublisher>>()));
            }
            if (settings.RevocationSource == "kubernetes")
            {
                builder.Services.AddSingleton(sp => new KubernetesRevocationSource(
                    sp.GetRequiredService<ClusterConnection>().Client, settings.Namespace, sp.GetRequiredService<RevocationStore>(), time,
                    sp.GetRequiredService<ILogger<KubernetesRevocationSource>>()));
                builder.Services.AddHostedService(sp => sp.GetRequiredService<KubernetesRevocationSource>());
                builder.Services.AddSingleton<SyncedWatchService>(sp => sp.GetRequiredService<KubernetesRevocationSource>());
            }
            builder.Services.AddSingleton<ConfigDistributor>();
            builder.Services.AddSingleton<SnapshotBuilder>();
            builder.Services.AddSingleton(new ConsoleLogins(dataDirectory, time));
            builder.Services.AddSingleton(new CollectedFlowLogs(dataDirectory));
            builder.Services.AddSingleton<CollectedFlows>();
            builder.Services.AddSingleton<MeshGuard.ControlPlane.Review.ConsoleSessions>();
            builder.Services.AddSingleton<WorkloadStatus>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<ConfigDistributor>());
            builder.Services.AddSingleton(sp => new ServiceAccountIssuerKeys(
                settings.ServiceAccounts, settings.TrustDomain, time, sp.GetRequiredService<ILogger<ServiceAccountIssuerKeys>>()));
            builder.Services.AddHostedService(sp => sp.GetRequiredService<ServiceAccountIssuerKeys>());
            builder.Services.AddSingleton<BootstrapEndpoint>();
            builder.Services.AddSingleton(settings.Injection ?? new MeshGuard.Contracts.Injection.InjectionTemplate());
            builder.Services.AddSingleton<MeshGuard.ControlPlane.Injector.InjectorEndpoint>();
            builder.Services.AddSingleton<ControlPlaneCredentials>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<ControlPlaneCredentials>());
            builder.Services.AddGrpc(o => o.MaxReceiveMessageSize = 64 * 1024)
                .AddServiceOptions<WitnessService>(o => o.MaxReceiveMessageSize = WitnessService.MaxSegmentBytes);
            builder.WebHost.ConfigureKestrel(kestrel =>
            {
                kestrel.AddServerHeader = false;
                // Sidecars originate TLS themselves and send HTTP/2 with :scheme http over it; the TLS is real, the scheme a label.
                kestrel.AllowAlternateSchemes = true;
                kestrel.Limits.MaxRequestBodySize = Bootstrap.MaxRequestBytes;
                var credentials = kestrel.ApplicationServices.GetRequiredService<ControlPlaneCredentials>();
                ListenTls(kestrel, bindAddress, settings.BootstrapPort, HttpProtocols.Http1, credentials, static c => c.BootstrapOptions);
                ListenTls(kestrel, bindAddress, settings.GrpcPort, HttpProtocols.Http2, credentials, static c => c.GrpcOptions);
                // The API server calls the webhook over server-only TLS, as a joining sidecar calls the bootstrap port.
                ListenTls(kestrel, bindAddress, settings.WebhookPort, HttpProtocols.Http1AndHttp2, credentials, static c => c.BootstrapOptions);
                kestrel.Listen(IPAddress.Loopback, settings.AdminPort);
            });

            var app = builder.Build();
            await app.Services.GetRequiredService<ServiceAccountIssuerKeys>().LoadAsync(cancellation);
            // The policies, and in a cluster the pods and the revocation list, each read once before any port opens.
            foreach (var watch in app.Services.GetServices<SyncedWatchService>())
            {
                await LoadBeforeServingAsync(watch, cancellation);
            }
            // Each endpoint on its own listener, decided by the connection's port (never by the Host header alone).
            app.UseListenerPorts();
            app.MapPost(Bootstrap.AttestPath, static (HttpContext c, BootstrapEndpoint e) => e.AttestAsync(c)).OnListener(settings.BootstrapPort);
            var info = new BootstrapInfo(settings.GrpcPort);
            app.MapGet(Bootstrap.InfoPath, () => Results.Json(info, ContractsJsonContext.Default.BootstrapInfo)).OnListener(settings.BootstrapPort);
            app.MapPost(MeshGuard.ControlPlane.Injector.InjectorEndpoint.Path, static (HttpContext c, MeshGuard.ControlPlane.Injector.InjectorEndpoint e) => e.HandleAsync(c))
                .OnListener(settings.WebhookPort);
            // Kestrel takes at most 64 KiB of a request body; a flow-log segment, on the gRPC port, may be larger.
            app.Use((context, next) =>
            {
                if (context.Connection.LocalPort == settings.GrpcPort && context.Request.Path.Equals(WitnessService.UploadPath, StringComparison.Ordinal)
                    && context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
                {
                    limit.MaxRequestBodySize = WitnessService.MaxSegmentBytes + 1024;
                }
                return next(context);
            });
            app.MapGrpcService<IdentityService>().OnListener(settings.GrpcPort);
            app.MapGrpcService<ConfigService>().OnListener(settings.GrpcPort);
            app.MapGrpcService<WitnessService>().OnListener(settings.GrpcPort);
            AdminEndpoints.Map(app, settings.AdminPort);
            MeshGuard.ControlPlane.Review.ConsoleEndpoints.Map(app, settings.AdminPort);

            await app.StartAsync(cancellation);
            // meshctl console url reads where the console is.
            SecureFile.WriteAtomically(dataDirectory.AdminAddressFile, $"127.0.0.1:{settings.AdminPort}\n", secret: false);
            Console.WriteLine(
                $"meshguard-cp trust-domain={settings.TrustDomain} data={dataDirectory.Root} bundle={dataDirectory.TrustBundle} store={settings.Store?.ToString() ?? "files"} " +
                $"bootstrap={settings.BindAddress}:{settings.BootstrapPort} grpc={settings.BindAddress}:{settings.GrpcPort} admin=127.0.0.1:{settings.AdminPort} " +
                $"webhook={settings.BindAddress}:{settings.WebhookPort}");
            await app.WaitForShutdownAsync(CancellationToken.None);
            return 0;
        }

        private static readonly TimeSpan SyncDeadline = TimeSpan.FromSeconds(30);

        // Nothing is served before the first complete read: a sidecar must never get an empty set that only means "not read yet".
        private static async Task LoadBeforeServingAsync(SyncedWatchService watch, CancellationToken cancellation)
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            deadline.CancelAfter(SyncDeadline);
            try
            {
                await watch.LoadAsync(deadline.Token);
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
            {
                throw new IOException($"no complete list of {watch.Description} within {SyncDeadline.TotalSeconds:F0}s (the log says why)");
            }
        }

        /// <summary>Open connections (and so handshakes in flight) each TLS port holds at most, as a sidecar's data listeners.</summary>
        private const int MaxConnectionsPerPort = 20_000;

        // Each handshake takes the options of the control plane's current SVID; connections over the port's bound are
        // closed before their handshake, and a handshake takes at most 10 s.
        private static void ListenTls(
            KestrelServerOptions kestrel, IPAddress address, int port, HttpProtocols protocols, ControlPlaneCredentials credentials,
            Func<ControlPlaneCredentials, System.Net.Security.SslServerAuthenticationOptions> options) =>
            kestrel.Listen(address, port, listen =>
            {
                listen.Protocols = protocols;
                new ConnectionLimit($"port {port}", MaxConnectionsPerPort).Apply(listen);
                listen.UseHttps(new TlsHandshakeCallbackOptions
                {
                    OnConnection = _ => ValueTask.FromResult(options(credentials)),
                    HandshakeTimeout = TimeSpan.FromSeconds(10),
                });
            });
    }
}
