using System.Net;
using System.Threading.Channels;
using k8s;
using k8s.Autorest;
using k8s.Models;
using MeshGuard.ControlPlane.Ca;

namespace MeshGuard.ControlPlane.Kubernetes;

/// <summary>
/// Writes the mesh's trust bundle as the ConfigMap <c>meshguard-ca-bundle</c> (key <c>bundle.pem</c>) into every
/// namespace labelled <c>meshguard.io/inject: enabled</c>, where injected sidecars mount it to check the control
/// plane, as Istio writes istio-ca-root-cert: created when missing, replaced when it differs, left alone when it
/// is right. Every replica does it; the writes are the same, so it does not matter which one wins.
/// </summary>
internal sealed partial class BundlePublisher(IKubernetes client, CertificateAuthority ca, TimeProvider time, ILogger<BundlePublisher> logger) : BackgroundService
{
    public const string ConfigMapName = "meshguard-ca-bundle";
    public const string Key = "bundle.pem";
    public const string NamespaceSelector = "meshguard.io/inject=enabled";

    private readonly Channel<string> _namespaces = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var watch = new ResourceWatch<V1Namespace>(
            "namespaces labelled " + NamespaceSelector,
            async (next, token) =>
            {
                var list = await client.CoreV1.ListNamespaceAsync(continueParameter: next, labelSelector: NamespaceSelector, cancellationToken: token);
                return ResourcePage<V1Namespace>.Of(list.Items, list.Metadata);
            },
            (version, onError, token) => client.CoreV1.WatchListNamespaceAsync(
                allowWatchBookmarks: true, labelSelector: NamespaceSelector, resourceVersion: version, timeoutSeconds: 300, onError: onError, cancellationToken: token),
            static item => item.Metadata?.ResourceVersion,
            time,
            logger);
        var watching = watch.RunAsync(
            namespaces =>
            {
                foreach (var item in namespaces)
                {
                    _namespaces.Writer.TryWrite(item.Metadata.Name);
                }
            },
            (type, item) =>
            {
                if (type != WatchEventType.Deleted)
                {
                    _namespaces.Writer.TryWrite(item.Metadata.Name);
                }
            },
            stoppingToken);
        return Task.WhenAll(watching, WriteAsync(stoppingToken));
    }

    private async Task WriteAsync(CancellationToken cancellation)
    {
        await foreach (var ns in _namespaces.Reader.ReadAllAsync(cancellation))
        {
            try
            {
                await EnsureAsync(ns, ca.Bundle.ToPem(), cancellation);
            }
            catch (Exception e) when (e is HttpOperationException or HttpRequestException or IOException && !cancellation.IsCancellationRequested)
            {
                // The next list (or a change to the namespace) tries again.
                LogFailed(logger, ns, e.Message);
            }
        }
    }

    private async Task EnsureAsync(string ns, string bundle, CancellationToken cancellation)
    {
        V1ConfigMap? existing;
        try
        {
            existing = await client.CoreV1.ReadNamespacedConfigMapAsync(ConfigMapName, ns, cancellationToken: cancellation);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            existing = null;
        }
        if (existing?.Data is { } data && data.TryGetValue(Key, out var current) && current == bundle)
        {
            return;
        }
        var map = new V1ConfigMap
        {
            ApiVersion = "v1",
            Kind = "ConfigMap",
            Metadata = new V1ObjectMeta
            {
                Name = ConfigMapName,
                NamespaceProperty = ns,
                Labels = new Dictionary<string, string> { ["app.kubernetes.io/part-of"] = "meshguard" },
                ResourceVersion = existing?.Metadata?.ResourceVersion,
            },
            Data = new Dictionary<string, string> { [Key] = bundle },
        };
        if (existing is null)
        {
            await client.CoreV1.CreateNamespacedConfigMapAsync(map, ns, cancellationToken: cancellation);
        }
        else
        {
            await client.CoreV1.ReplaceNamespacedConfigMapAsync(map, ConfigMapName, ns, cancellationToken: cancellation);
        }
        LogWritten(logger, ns, existing is null ? "created" : "replaced");
    }

    [LoggerMessage(EventId = 73, Level = LogLevel.Information, Message = "kubernetes: trust bundle ConfigMap in namespace {Namespace} {What}")]
    private static partial void LogWritten(ILogger logger, string @namespace, string what);

    [LoggerMessage(EventId = 74, Level = LogLevel.Warning, Message = "kubernetes: could not write the trust bundle ConfigMap in namespace {Namespace} ({Reason}); tried again at the next list")]
    private static partial void LogFailed(ILogger logger, string @namespace, string reason);
}
