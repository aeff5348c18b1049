using k8s;
using k8s.Models;
using MeshGuard.ControlPlane.Kubernetes;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Registry;

/// <summary>A mesh endpoint as a pod shows it.</summary>
internal readonly record struct PodEndpoint(string Service, string Namespace, string Address, SpiffeId Identity);

/// <summary>
/// In a cluster, the service table comes from the pods the injector gave a sidecar, as Istio's and Linkerd's
/// endpoints come from the API, not from what each sidecar told one replica: so every control-plane replica
/// serves the same table, and a deleted or unready pod leaves it. A pod counts while it runs, is Ready, has an
/// IP and is not being deleted; its service is its sidecar's <c>--service</c>, its address the pod IP at the
/// sidecar's <c>meshguard-in</c> port, its identity its service account's SPIFFE ID.
/// </summary>
internal sealed class KubernetesEndpointSource(IKubernetes client, string server, ServiceRegistry registry, string trustDomain, TimeProvider time, ILogger<KubernetesEndpointSource> logger)
    : SyncedWatchService
{
    public const string ProxyContainer = "meshguard-proxy";
    public const string InboundPortName = "meshguard-in";
    private const int PageSize = 500;
    private static readonly TimeSpan WatchTimeout = TimeSpan.FromMinutes(5);

    private readonly Dictionary<string, PodEndpoint> _endpoints = new(StringComparer.Ordinal);

    public override string Description => "pods at " + server;


    protected override Task WatchAsync(CancellationToken cancellation)
    {
        var watch = new ResourceWatch<V1Pod>(
            "meshed pods at " + server,
            async (next, token) =>
            {
                var list = await client.CoreV1.ListPodForAllNamespacesAsync(continueParameter: next, limit: PageSize, cancellationToken: token);
                return ResourcePage<V1Pod>.Of(list.Items, list.Metadata);
            },
            (version, onError, token) => client.CoreV1.WatchListPodForAllNamespacesAsync(
                allowWatchBookmarks: true, resourceVersion: version, timeoutSeconds: (int)WatchTimeout.TotalSeconds, onError: onError, cancellationToken: token),
            static pod => pod.Metadata?.ResourceVersion,
            time,
            logger);
        return watch.RunAsync(
            pods =>
            {
                _endpoints.Clear();
                foreach (var pod in pods)
                {
                    Apply(WatchEventType.Added, pod);
                }
                Publish();
                MarkSynced();
            },
            (type, pod) =>
            {
                Apply(type, pod);
                Publish();
            },
            cancellation);
    }

    private void Apply(WatchEventType type, V1Pod pod)
    {
        var key = pod.Metadata.NamespaceProperty + "/" + pod.Metadata.Name;
        if (type != WatchEventType.Deleted && EndpointOf(pod, trustDomain) is { } endpoint)
        {
            _endpoints[key] = endpoint;
        }
        else
        {
            _endpoints.Remove(key);
        }
    }

    private void Publish() => registry.Replace([.. _endpoints.Values]);

    /// <summary>The mesh endpoint a pod is, or null while it is none (no sidecar, not running or ready, no IP, being deleted).</summary>
    public static PodEndpoint? EndpointOf(V1Pod pod, string trustDomain)
    {
        var proxy = pod.Spec?.Containers?.FirstOrDefault(static c => c.Name == ProxyContainer);
        if (proxy is null || pod.Metadata.DeletionTimestamp is not null || pod.Status?.Phase != "Running"
            || string.IsNullOrEmpty(pod.Status.PodIP) || !(pod.Status.Conditions?.Any(static c => c.Type == "Ready" && c.Status == "True") ?? false))
        {
            return null;
        }
        var arguments = proxy.Args ?? [];
        var at = arguments.IndexOf("--service");
        if (at < 0 || at + 1 >= arguments.Count)
        {
            return null;
        }
        var port = proxy.Ports?.FirstOrDefault(static p => p.Name == InboundPortName)?.ContainerPort ?? 15006;
        var ns = pod.Metadata.NamespaceProperty ?? "default";
        var account = string.IsNullOrEmpty(pod.Spec!.ServiceAccountName) ? "default" : pod.Spec.ServiceAccountName;
        return new PodEndpoint(arguments[at + 1], ns, new System.Net.IPEndPoint(System.Net.IPAddress.Parse(pod.Status.PodIP), port).ToString(),
            SpiffeId.ForWorkload(trustDomain, ns, account));
    }
}
