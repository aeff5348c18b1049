using System.Text.Json.Nodes;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshGuard.ControlPlane.Tests.Sources;

/// <summary>The revocation list of a cluster: the ConfigMap meshguard-revocations, replayed to the real KubernetesClient.</summary>
public sealed class KubernetesRevocationSourceTests : IAsyncDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly KubernetesApiReplay _api = new();
    private RevocationStore? _store;
    private KubernetesRevocationSource? _source;

    private async Task<RevocationStore> StartAsync()
    {
        _api.ConfigMaps.Lists.Enqueue(KubernetesApiReplay.Recorded("configmaps-revocations-list.json"));
        var url = await _api.StartAsync();
        _store = new RevocationStore(new DataDirectory(_temp.Path), TimeProvider.System, NullLogger<RevocationStore>.Instance, fromFile: false);
        _source = new KubernetesRevocationSource(
            new k8s.Kubernetes(new k8s.KubernetesClientConfiguration { Host = url }), "meshguard", _store, TimeProvider.System, NullLogger<KubernetesRevocationSource>.Instance);
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await _source.LoadAsync(limit.Token);
        await _source.StartAsync(CancellationToken.None);
        return _store;
    }

    /// <summary>A watch event for the recorded ConfigMap with other text (or deleted).</summary>
    private static string Event(string type, string text, int version)
    {
        var map = JsonNode.Parse(KubernetesApiReplay.Recorded("configmaps-revocations-list.json"))!["items"]![0]!.DeepClone();
        map["data"]!["revocations.txt"] = text;
        map["metadata"]!["resourceVersion"] = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return new JsonObject { ["type"] = type, ["object"] = map }.ToJsonString();
    }

    private static string[] Revoked(RevocationStore store) => [.. store.Current.Ids.Select(i => i.ToString())];

    [Fact]
    public async Task TheListedConfigMapIsInForceAndEditsFollowAndABadEditIsRefusedWhole()
    {
        var store = await StartAsync();
        Assert.Equal(["spiffe://mesh.local/ns/shop/sa/payments"], Revoked(store));
        Assert.True(await Eventually.TrueAsync(() => _api.ConfigMaps.WatchVersions.Count == 1), "timed out waiting for the watch");

        await _api.ConfigMaps.SendAsync(Event("MODIFIED", "spiffe://mesh.local/ns/shop/sa/payments\nspiffe://mesh.local/ns/shop/sa/legacy\n", 60400));
        Assert.True(await Eventually.TrueAsync(() => Revoked(store).Length == 2), "timed out waiting for the second revocation");

        // A line that is no SPIFFE ID: the whole edit is refused, both revocations stay.
        await _api.ConfigMaps.SendAsync(Event("MODIFIED", "spiffe://mesh.local/ns/shop/sa/payments\nlegacy\n", 60410));
        await Task.Delay(300);
        Assert.Equal(["spiffe://mesh.local/ns/shop/sa/legacy", "spiffe://mesh.local/ns/shop/sa/payments"], Revoked(store));
        await _api.ConfigMaps.SendAsync(Event("MODIFIED", "spiffe://mesh.local/ns/shop/sa/payments\nspiffe://mesh.local/ns/shop/sa/legacy\nspiffe://mesh.local/ns/shop/sa/old\n", 60420));
        Assert.True(await Eventually.TrueAsync(() => Revoked(store).Length == 3), "timed out waiting for the edit after the refused one");

        await _api.ConfigMaps.SendAsync(Event("DELETED", "", 60430));
        Assert.True(await Eventually.TrueAsync(() => Revoked(store).Length == 0), "timed out waiting for the deletion");
    }

    public async ValueTask DisposeAsync()
    {
        if (_source is not null)
        {
            await _source.StopAsync(CancellationToken.None);
            _source.Dispose();
        }
        _store?.Dispose();
        await _api.DisposeAsync();
        _temp.Dispose();
    }
}
