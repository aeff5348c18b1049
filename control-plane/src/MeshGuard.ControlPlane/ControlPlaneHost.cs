using System.Net;
using MeshGuard.CommandLine;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Admin;
using MeshGuard.ControlPlane.Attestation;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.ControlPlane.FlowCollection;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.Kubernetes;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.SharedState;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.ControlPlane.State;
using MeshGuard.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace MeshGuard.ControlPlane;

/// <summary>
/// The composition root of <c>meshguard-cp</c>: checks the settings the serving command read, opens the CA (from the
/// data directory or etcd), wires the stores and sources of the kinds the settings name, and serves the bootstrap,
/// gRPC, webhook and admin listeners until shut down. Imported by no module.
/// </summary>
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
        using var etcd = settings.Store is { } location ? new MeshGuard.Etcd.EtcdConnection(location) : null;
        var opened = etcd is null ? null : await EtcdStoreServices.OpenAsync(etcd, settings, time, cancellation);
        var ca = opened?.Ca ?? CertificateAuthority.LoadOrCreate(dataDirectory, settings.TrustDomain, time);
        await using var flowStore = settings.FlowStore is { } flowLocation ? await OpenFlowStoreAsync(flowLocation, time, cancellation) : null;
        SecureFile.WriteAtomically(dataDirectory.TrustBundle, ca.Bundle.ToPem(), secret: false);
        // A port another process holds ends the start here, before the sources are read (up to 30 s each).
        PortsInUse.ThrowIfAnyTaken([
            ("--bootstrap-port", new IPEndPoint(bindAddress, settings.BootstrapPort)), ("--grpc-port", new IPEndPoint(bindAddress, settings.GrpcPort)),
            ("--webhook-port", new IPEndPoint(bindAddress, settings.WebhookPort)), ("--admin-port", new IPEndPoint(IPAddress.Loopback, settings.AdminPort))]);

        var builder = MeshGuard.Hosting.ServerBuilder.Create();
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
            ? new ServiceRegistry(dataDirectory, acceptsRegistrations: settings.EndpointSource != EndpointSourceKind.Kubernetes, sp.GetRequiredService<SecureNaming>(), time)
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
        if (settings.EndpointSource == EndpointSourceKind.Kubernetes)
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
        builder.Services.AddSingleton<IPolicySource>(sp => settings.PolicySource == PolicySourceKind.Kubernetes
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
        builder.Services.AddSingleton(sp => new RevocationStore(dataDirectory, time, sp.GetRequiredService<ILogger<RevocationStore>>(), fromFile: settings.RevocationSource == RevocationSourceKind.Files && etcd is null));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RevocationStore>());
        if (settings.PublishBundle)
        {
            builder.Services.AddHostedService(sp => new BundlePublisher(
                sp.GetRequiredService<ClusterConnection>().Client, ca, time,
                sp.GetRequiredService<ILogger<BundlePublisher>>()));
        }
        if (settings.RevocationSource == RevocationSourceKind.Kubernetes)
        {
            builder.Services.AddSingleton(sp => new KubernetesRevocationSource(
                sp.GetRequiredService<ClusterConnection>().Client, settings.Namespace, sp.GetRequiredService<RevocationStore>(), time,
                sp.GetRequiredService<ILogger<KubernetesRevocationSource>>()));
            builder.Services.AddHostedService(sp => sp.GetRequiredService<KubernetesRevocationSource>());
            builder.Services.AddSingleton<SyncedWatchService>(sp => sp.GetRequiredService<KubernetesRevocationSource>());
        }
        builder.Services.AddSingleton<ConfigDistributor>();
        builder.Services.AddSingleton<SnapshotBuilder>();
        builder.Services.AddHostedService<StartupWarmUp>();
        builder.Services.AddSingleton(new ConsoleLogins(dataDirectory, time));
        var collected = new CollectedFlowLogs(dataDirectory);
        builder.Services.AddSingleton(collected);
        builder.Services.AddSingleton<MeshGuard.FlowStore.IFlowSegmentStore>(flowStore is null ? collected : flowStore);
        if (flowStore is not null)
        {
            builder.Services.AddHostedService(sp => new FlowStoreRetention(flowStore, settings.FlowRetentionDays, time, sp.GetRequiredService<ILogger<FlowStoreRetention>>()));
            builder.Services.AddSingleton(sp => new FlowStoreAudit(flowStore.Logs, sp.GetRequiredService<CertificateAuthority>(),
                settings.FlowAuditInterval ?? TimeSpan.FromHours(1), time, sp.GetRequiredService<ILogger<FlowStoreAudit>>()));
            builder.Services.AddHostedService(sp => sp.GetRequiredService<FlowStoreAudit>());
        }
        if (flowStore is null)
        {
            builder.Services.AddSingleton<ICollectedFlows>(sp => new CollectedFlows(collected, sp.GetRequiredService<CertificateAuthority>()));
        }
        else
        {
            builder.Services.AddSingleton<ICollectedFlows>(new StoredCollectedFlows(flowStore.Logs));
        }
        builder.Services.AddSingleton<MeshGuard.ControlPlane.Review.ConsoleSessions>();
        builder.Services.AddSingleton<WorkloadStatus>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ConfigDistributor>());
        builder.Services.AddSingleton(sp => new ServiceAccountIssuerKeys(
            settings.ServiceAccounts, settings.TrustDomain, time, sp.GetRequiredService<ILogger<ServiceAccountIssuerKeys>>()));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ServiceAccountIssuerKeys>());
        builder.Services.AddSingleton<BootstrapEndpoint>();
        builder.Services.AddSingleton(settings.Injection ?? new MeshGuard.ControlPlane.Common.Injection.InjectionTemplate());
        builder.Services.AddSingleton<MeshGuard.ControlPlane.Injector.InjectorEndpoint>();
        builder.Services.AddSingleton<ControlPlaneCredentials>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ControlPlaneCredentials>());
        builder.Services.AddSingleton(_ => new SegmentUploadGate(time));
        builder.Services.AddGrpc(o => o.MaxReceiveMessageSize = 64 * 1024)
            .AddServiceOptions<WitnessService>(o => o.MaxReceiveMessageSize = WitnessService.MaxSegmentBytes);
        var kestrelBlocks = new KestrelBlocks(time);
        builder.Services.AddSingleton(kestrelBlocks);
        builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>>(kestrelBlocks);
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
        // Kestrel takes at most 64 KiB of a request body; a flow-log segment, on the gRPC port, may be larger (whole or in
        // parts), and is admitted by the upload gate before any of it is read.
        var uploads = app.Services.GetRequiredService<SegmentUploadGate>();
        app.Use((context, next) =>
        {
            if (context.Connection.LocalPort != settings.GrpcPort || !WitnessService.TakesLargeBody(context.Request.Path))
            {
                return next(context);
            }
            if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            {
                limit.MaxRequestBodySize = WitnessService.MaxSegmentBytes + 64 * 1024; // with room for the framing of its parts
            }
            return uploads.InvokeAsync(context, next);
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
            $"meshguard-cp trust-domain={settings.TrustDomain} data={dataDirectory.Root} bundle={dataDirectory.TrustBundle} store={settings.Store?.ToString() ?? "files"} flow-store={settings.FlowStore?.Display ?? "files"} " +
            $"bootstrap={settings.BindAddress}:{settings.BootstrapPort} grpc={settings.BindAddress}:{settings.GrpcPort} admin=127.0.0.1:{settings.AdminPort} " +
            $"webhook={settings.BindAddress}:{settings.WebhookPort}");
        await app.WaitForShutdownAsync(CancellationToken.None);
        return 0;
    }

    private static readonly TimeSpan SyncDeadline = TimeSpan.FromSeconds(30);

    // Unreachable or refusing at the start: the control plane does not serve, rather than take segments it cannot keep.
    private static async Task<MeshGuard.FlowStore.PostgresFlowStore> OpenFlowStoreAsync(MeshGuard.FlowStore.FlowStoreLocation location, TimeProvider time, CancellationToken cancellation)
    {
        try
        {
            return await MeshGuard.FlowStore.PostgresFlowStore.OpenAsync(location, time, cancellation);
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException)
        {
            throw new IOException($"--flow-store {location.Display}: {e.Message}", e);
        }
    }

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
