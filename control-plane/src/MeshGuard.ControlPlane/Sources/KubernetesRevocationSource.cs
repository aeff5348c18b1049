using k8s;
using k8s.Models;
using MeshGuard.ControlPlane.Kubernetes;

namespace MeshGuard.ControlPlane.Sources;

/// <summary>
/// In a cluster, the revocation list is the key <c>revocations.txt</c> of the ConfigMap <c>meshguard-revocations</c>
/// in the control plane's namespace (same format as the file: one SPIFFE ID a line), watched by every replica.
/// A text with a bad line is refused whole and the last good list stays; a deleted ConfigMap is an empty list.
/// </summary>
internal sealed class KubernetesRevocationSource(IKubernetes client, string ns, RevocationStore store, TimeProvider time, ILogger<KubernetesRevocationSource> logger)
    : SyncedWatchService
{
    public const string ConfigMapName = "meshguard-revocations";
    public const string Key = "revocations.txt";
    private static readonly string FieldSelector = "metadata.name=" + ConfigMapName;


    public override string Description => $"ConfigMap {ns}/{ConfigMapName}";

    protected override Task WatchAsync(CancellationToken cancellation)
    {
        var watch = new ResourceWatch<V1ConfigMap>(
            Description,
            async (next, token) =>
            {
                var list = await client.CoreV1.ListNamespacedConfigMapAsync(ns, continueParameter: next, fieldSelector: FieldSelector, cancellationToken: token);
                return ResourcePage<V1ConfigMap>.Of(list.Items, list.Metadata);
            },
            (version, onError, token) => client.CoreV1.WatchListNamespacedConfigMapAsync(
                ns, allowWatchBookmarks: true, fieldSelector: FieldSelector, resourceVersion: version, timeoutSeconds: 300, onError: onError, cancellationToken: token),
            static map => map.Metadata?.ResourceVersion,
            time,
            logger);
        return watch.RunAsync(
            maps =>
            {
                Offer(maps.Count > 0 ? maps[0] : null);
                MarkSynced();
            },
            (type, map) => Offer(type == WatchEventType.Deleted ? null : map),
            cancellation);
    }

    private void Offer(V1ConfigMap? map) =>
        store.Offer(map?.Data is { } data && data.TryGetValue(Key, out var text) ? text : "", Description + "/" + Key);
}
