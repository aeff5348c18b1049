using System.Net;
using MeshGuard.Hosting;
using MeshGuard.Proxy.Admin;
using MeshGuard.Proxy.Authorization;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.ControlPlaneClient;
using MeshGuard.Proxy.FlowLog;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Inbound;
using MeshGuard.Proxy.Limits;
using MeshGuard.Proxy.Outbound;
using MeshGuard.Proxy.Outbound.Resilience;
using MeshGuard.Proxy.Routing;
using MeshGuard.Proxy.Telemetry;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http1;
using MeshGuard.Proxy.Transport.Http2;
using MeshGuard.Spiffe;
using Microsoft.Extensions.ObjectPool;

namespace MeshGuard.Proxy;

/// <summary>
/// Starts the sidecar: 1. check its ports are free and read the control plane's bundle; 2. attest with the join token and get an SVID
/// (nothing listens before the sidecar has an identity); 3. start the inbound, outbound and admin
/// listeners and the background loops (SVID rotation, service stream).
/// </summary>
internal static partial class SidecarHost
{
    /// <summary>Octets the transport reads from a connection ahead of what its request has consumed.</summary>
    internal const int ReadAhead = 64 * 1024;

    private static readonly TimeSpan AttestDeadline = TimeSpan.FromSeconds(60);

    public static async Task<int> RunAsync(ProxySettings settings, CancellationToken cancellation)
    {
        var time = TimeProvider.System;
        using var startupLogging = LoggerFactory.Create(ServerLogging.Configure);
        var logger = startupLogging.CreateLogger("MeshGuard.Proxy");

        // 1. A port another process holds ends the start here, before a one-time join token is spent on it.
        PortsInUse.ThrowIfAnyTaken([
            ("--inbound-port", new IPEndPoint(settings.InboundAddress, settings.InboundPort)), ("--outbound-port", new IPEndPoint(IPAddress.Loopback, settings.OutboundPort)),
            ("--admin-port", new IPEndPoint(IPAddress.Loopback, settings.AdminPort)), ("--metrics-port", new IPEndPoint(IPAddress.Loopback, settings.MetricsPort)),
            .. settings.OutboundTcp.Select(static m => ("--outbound-tcp", new IPEndPoint(IPAddress.Loopback, m.LocalPort)))]);
        var controlPlaneBundle = TrustBundle.Load(settings.ControlPlaneBundleFile);

        // 2. A stored SVID that is still valid lets a restarted sidecar go on without the control plane. The state
        // directory is written on a thread of its own: nothing the sidecar serves or starts waits on the disk, and
        // however RunAsync ends (a stop, a failed start after attesting) the queue is written first.
        using var stateFiles = new MeshGuard.Proxy.Runtime.StateFileWriter(logger);
        var store = settings.StateDirectory is { } state ? new SvidStore(state, stateFiles) : null;
        var identity = new WorkloadIdentity(time, store);
        var connector = new SpiffeConnector(identity, time);
        var identityClient = new IdentityClient(
            new AttestationSettings(settings.ControlPlaneBootstraps, settings.JoinToken, settings.ServiceAccountTokenFile, settings.Service, settings.AdvertiseAddress),
            identity, connector, time);
        Task<X509Svid> acquiring;
        if (store?.TryLoad(controlPlaneBundle, time.GetUtcNow(), out var storedReason) is { } stored)
        {
            identity.Publish(stored.Svid, stored.Bundle, key: null);
            LogResumed(logger, stored.Svid.Id, stored.Svid.NotAfter);
            acquiring = Task.FromResult(stored.Svid);
        }
        else
        {
            acquiring = AttestAsync(identityClient, controlPlaneBundle, time, logger, cancellation);
        }
        // The host is put together while the attestation is on the wire: each takes tens of milliseconds of a
        // start, and neither needs the other (measured on the NativeAOT build: 30 ms for the builder, 90 for attesting).
        var builder = MeshGuard.Hosting.ServerBuilder.Create();
        ServerLogging.Configure(builder.Logging);
        var svid = await acquiring;

        if (settings.ControlPlaneGrpcs.Count == 0)
        {
            settings = settings with
            {
                ControlPlaneGrpcs = await ControlPlaneAddresses.GrpcOfAsync(
                    settings.ControlPlaneBootstraps, connector, controlPlaneBundle, settings.StateDirectory, stateFiles, logger, cancellation),
            };
        }

        // 3.
        var services = builder.Services;
        services.AddSingleton(new InboundSettings(
            settings.Service, settings.AppAddress, settings.AppPort, settings.AppProtocol, settings.OpaquePorts, settings.PathNormalization, settings.ForwardedHeaders));
        services.AddSingleton(new ControlPlaneSettings(settings.ControlPlaneGrpcs, settings.StateDirectory));
        services.AddSingleton(new TransparentOutboundSettings(settings.OutboundPort, settings.OutboundPassthrough));
        services.AddSingleton(time);
        services.AddSingleton(stateFiles);
        services.AddSingleton(identity);
        services.AddSingleton<ICredentialSource>(identity);
        services.AddSingleton(connector);
        services.AddSingleton(identityClient);
        var pools = new MeshConnectionPools(connector, time);
        services.AddSingleton(pools);
        var outboundMetrics = new OutboundMetrics();
        services.AddSingleton(outboundMetrics);
        services.AddSingleton(settings.Resilience);
        services.AddSingleton(new RetryBudget(settings.Resilience.RetryBudgetRatio, settings.Resilience.RetryBudgetMinPerSecond, time));
        services.AddSingleton<ObjectPool<OutboundExchange>>(new DefaultObjectPool<OutboundExchange>(new OutboundExchange.Policy(), 1024));
        services.AddSingleton<SidecarConfigSource>();
        services.AddSingleton(new RouteCompiler(
            svid.Id.GetPathValue("ns") ?? "default", pools, () => new EndpointCircuit(settings.Resilience, time, outboundMetrics)));
        services.AddSingleton<ControlPlaneChannel>();
        services.AddSingleton<PeerConnections>();
        services.AddSingleton<DecisionLog>();
        services.AddSingleton(new FlowLogSink(settings.FlowLog));
        services.AddSingleton<SvidCheckpointSigner>();
        services.AddSingleton<FlowLogUploader>();
        services.AddSingleton<IFlowLogShipper>(sp => sp.GetRequiredService<FlowLogUploader>());
        services.AddHostedService(sp => sp.GetRequiredService<FlowLogUploader>());
        services.AddHostedService<FlowLogService>();
        if (settings.FlowLog.Directory is not null && OtlpFlowRecordExport.CreateIfConfigured(settings.Service) is { } export)
        {
            // A factory registration, so that the container disposes it (a last flush) when the host stops.
            services.AddSingleton<IFlowRecordExport>(_ => export);
        }
        services.AddSingleton<AuthorizationMetrics>();
        services.AddSingleton<SnapshotApplier>();
        services.AddHttpForwarder();
        services.AddSingleton<AppInvokers>();
        services.AddKeyedSingleton(AppInvokers.SharedKey, (sp, _) => sp.GetRequiredService<AppInvokers>().Shared);
        var appEndpoint = new IPEndPoint(settings.AppAddress, settings.AppPort);
        services.AddSingleton(new MeshGuard.Proxy.Transport.Http1.AppConnectionPool(appEndpoint, time));
        services.AddSingleton<AppHttp1Leg>();
        services.AddSingleton(sp => new AppHttp2Leg(appEndpoint, time, sp.GetRequiredService<ILogger<AppHttp2Leg>>()));
        services.AddSingleton<InboundAuthorizer>();
        services.AddSingleton<InboundFlowRecorder>();
        services.AddSingleton<InboundHandler>();
        services.AddSingleton<OpaqueTcpInbound>();
        services.AddSingleton<OpaqueTcpOutbound>();
        services.AddSingleton<OutboundFlowRecorder>();
        services.AddSingleton<OutboundHandler>();
        services.AddSingleton<TransparentOutbound>();
        services.AddHostedService<SvidRotator>();
        services.AddHostedService<ConfigWatcher>();
        OpenTelemetrySetup.Configure(services, settings.Service);
        // Inbound (peers) and outbound (the app, on every outbound port) are bounded apart: a flood on one
        // leaves the other served.
        var connectionLimits = new ConnectionLimits(
            new MeshGuard.Hosting.ConnectionLimit("inbound", settings.Limits.MaxConnections), new MeshGuard.Hosting.ConnectionLimit("outbound", settings.Limits.MaxConnections));
        services.AddSingleton(connectionLimits);
        services.AddSingleton<PrematureResetLimit>();
        // What a connection reads ahead of its consumer (1 MiB per connection by default, in pinned 4 KiB blocks that
        // Kestrel's pool keeps): a sidecar passes bodies on, it does not hold them. Under the bench's 1 MiB uploads
        // (8 connections) the default held some 8 MiB of the outbound sidecar's heap. An app's request goes on from the
        // socket engine thread that read it, and an answer's send from the thread that flushed it, with no thread-pool
        // hop (UnsafePreferInlineScheduling): with one engine thread for two cores (Transport/SocketCompletions) that
        // saved the outbound a fifth of its context switches (ARCHITECTURE.md). Nothing the sidecar runs on its Kestrel
        // listeners blocks.
        builder.WebHost.UseSockets(sockets =>
        {
            sockets.MaxReadBufferSize = ReadAhead;
            sockets.UnsafePreferInlineScheduling = true;
        });
        // The inbound port's own transport and both ports' own servers. With telemetry export on, their requests pass
        // the hosting layer, as Kestrel's do (its spans and http.server metrics).
        services.AddSingleton<Microsoft.AspNetCore.Connections.IConnectionListenerFactory>(provider => new InboundTlsTransport(
            identity, connectionLimits, InboundConnection.HandshakeTimeout, provider.GetRequiredService<ILoggerFactory>()));
        if (OpenTelemetrySetup.IsConfigured)
        {
            HostingLayerServer.Register(services);
        }
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // Bodies are streamed, never held: a body is as long as the app makes it (Kestrel's default cap is 30 MB).
            kestrel.Limits.MaxRequestBodySize = null;
            // Sidecars originate TLS themselves and send HTTP/2 with :scheme http over it; the TLS is real, the scheme a label.
            kestrel.AllowAlternateSchemes = true;
            kestrel.Limits.RequestHeadersTimeout = settings.Limits.RequestHeadersTimeout;
            kestrel.Listen(new InboundTlsEndPoint(new IPEndPoint(settings.InboundAddress, settings.InboundPort)),
                listen => InboundConnection.ConfigureOwnTransport(listen, identity, settings.Limits.RequestHeadersTimeout));
            // Apps that speak h2c: the own server, one for every outbound port.
            Http2RequestHandler Outbound() => HostingLayerServer.Choose(kestrel.ApplicationServices, kestrel.ApplicationServices.GetRequiredService<OutboundHandler>().HandleRequestAsync);
            var outboundHttp2 = new Http2ServerEndpoint(
                Outbound,
                () => kestrel.ApplicationServices.GetRequiredService<ILogger<Http2ServerConnection>>(),
                new Http2ServerLimits(settings.Limits.RequestHeadersTimeout, ListenerLimits.KeepAliveTimeout));
            // Apps that speak HTTP/1.1: the own server first, Kestrel's for what is not plain.
            var outboundHttp1 = new Http1ServerEndpoint(
                Outbound,
                () => kestrel.ApplicationServices.GetRequiredService<ILogger<Http1ServerConnection>>(),
                new Http1ServerLimits(settings.Limits.RequestHeadersTimeout, ListenerLimits.KeepAliveTimeout));
            // Connections redirected here by the pod's nat rules carry their original destination; others use the port as an HTTP proxy.
            TransparentOutbound? transparent = null;
            AppProtocolDetection.Listen(kestrel, new IPEndPoint(IPAddress.Loopback, settings.OutboundPort), ListenerRole.Outbound, connectionLimits.Outbound, settings.ProtocolDetectTimeout,
                outboundHttp2, outboundHttp1,
                connection => (transparent ??= kestrel.ApplicationServices.GetRequiredService<TransparentOutbound>()).HandleOpaqueAsync(connection),
                intercept: connection => (transparent ??= kestrel.ApplicationServices.GetRequiredService<TransparentOutbound>()).InterceptAsync(connection));
            foreach (var mapping in settings.OutboundTcp)
            {
                var local = new IPEndPoint(IPAddress.Loopback, mapping.LocalPort);
                if (mapping.Opaque)
                {
                    // Declared opaque: no detection, so a protocol whose server speaks first is not kept waiting.
                    kestrel.Listen(local, listen =>
                    {
                        connectionLimits.Outbound.Apply(listen);
                        listen.Use(_ =>
                    {
                        var tcp = listen.ApplicationServices.GetRequiredService<OpaqueTcpOutbound>();
                        return connection => tcp.HandleAsync(connection, mapping);
                    });
                    });
                    continue;
                }
                OpaqueTcpOutbound? opaque = null;
                AppProtocolDetection.Listen(kestrel, local, ListenerRole.Outbound, connectionLimits.Outbound, settings.ProtocolDetectTimeout,
                    outboundHttp2, outboundHttp1,
                    connection => (opaque ??= kestrel.ApplicationServices.GetRequiredService<OpaqueTcpOutbound>()).HandleAsync(connection, mapping),
                    new OutboundDestination(mapping));
            }
            kestrel.Listen(IPAddress.Loopback, settings.AdminPort);
            kestrel.Listen(IPAddress.Loopback, settings.MetricsPort);
        });

        var app = builder.Build();
        OpenTelemetrySetup.ObserveFlowLog(app.Services.GetRequiredService<FlowLogSink>());
        // The last good snapshot on disk is in force until the stream brings a newer one (fail-static).
        app.Services.GetRequiredService<SnapshotApplier>().TryApplyFromDisk();
        var inbound = app.Services.GetRequiredService<InboundHandler>();
        var outbound = app.Services.GetRequiredService<OutboundHandler>();
        // The data listeners never reach routing: one feature lookup picks the handler. (Requests the own servers
        // read go to the handlers straight; these are Kestrel's, whose HTTP/1.1 hop-by-hop fields are dropped here.)
        app.Use((context, next) =>
        {
            var role = context.Features.Get<ListenerRole>();
            if (ReferenceEquals(role, ListenerRole.Inbound))
            {
                Http1HandOver.Apply(context);
                return inbound.HandleAsync(context);
            }
            if (ReferenceEquals(role, ListenerRole.Outbound))
            {
                Http1HandOver.Apply(context);
                return outbound.HandleAsync(context);
            }
            return next(context);
        });
        app.UseRouting();
        app.UseListenerPorts();
        AdminEndpoints.Map(app, settings.AdminPort);
        MetricsEndpoint.Map(app, settings.MetricsPort);

        await app.StartAsync(cancellation);
        Console.WriteLine(
            $"meshguard-proxy service={settings.Service} id={svid.Id} inbound={settings.InboundAddress}:{settings.InboundPort} " +
            $"outbound=127.0.0.1:{settings.OutboundPort} admin=127.0.0.1:{settings.AdminPort} metrics=127.0.0.1:{settings.MetricsPort} flows={settings.FlowLog.Directory ?? "off"} " +
            $"system-ca-store={MeshGuard.Proxy.Identity.SystemTrustStore.Decision} socket-completions={SocketCompletions.Decision} socket-engines={SocketCompletions.Engines} " +
            $"deferred-writes={(SocketCompletions.Inline ? "engine-turn" : "thread-pool")}");
        // Once the start has settled, the heap and the executable's pages only the start used go back (Runtime/StartupMemory).
        using var startupMemory = time.CreateTimer(
            static state => Console.WriteLine($"meshguard-proxy start-up-pages-released={MeshGuard.Proxy.Runtime.StartupMemory.ReleaseOnce((TimeProvider)state!)}"),
            time, MeshGuard.Proxy.Runtime.StartupMemory.Settle, Timeout.InfiniteTimeSpan);
        await app.WaitForShutdownAsync(CancellationToken.None);
        return 0;
    }

    private static async Task<X509Svid> AttestAsync(IdentityClient client, TrustBundle bundle, TimeProvider time, ILogger logger, CancellationToken cancellation)
    {
        var deadline = time.GetUtcNow() + AttestDeadline;
        var backoff = new Backoff(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(5));
        while (true)
        {
            try
            {
                var svid = await client.AttestAsync(bundle, cancellation);
                LogAttested(logger, svid.Id, svid.NotAfter);
                return svid;
            }
            catch (AttestationRefusedException e)
            {
                throw new StartupException(e.Message);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellation.IsCancellationRequested)
            {
                if (e.InnerException is PeerIdentityException identityError)
                {
                    throw new StartupException($"control plane at {identityError.Message}");
                }
                if (time.GetUtcNow() > deadline)
                {
                    throw new StartupException($"control plane unreachable for {AttestDeadline.TotalSeconds:F0}s: {e.Message}");
                }
                LogAttestRetry(logger, e.Message);
                await backoff.DelayAsync(time, cancellation);
            }
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "attested as {SpiffeId}, SVID valid until {NotAfter:o}")]
    private static partial void LogAttested(ILogger logger, SpiffeId spiffeId, DateTimeOffset notAfter);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "resumed stored SVID {SpiffeId}, valid until {NotAfter:o}")]
    private static partial void LogResumed(ILogger logger, SpiffeId spiffeId, DateTimeOffset notAfter);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "control plane not reachable yet ({Reason}); retrying")]
    private static partial void LogAttestRetry(ILogger logger, string reason);
}

/// <summary>Startup cannot go on: one line for the operator, exit code 1.</summary>
internal sealed class StartupException(string message) : Exception(message);
