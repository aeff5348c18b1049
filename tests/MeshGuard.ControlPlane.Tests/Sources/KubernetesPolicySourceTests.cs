using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Policy.Engine;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshGuard.ControlPlane.Tests.Sources;

/// <summary>
/// The AccessPolicy source against the Kubernetes API's responses (testdata/kubernetes), replayed by a local
/// HTTP server to the real KubernetesClient: list in pages, watch, resume, 410, relist; the policy store on top
/// judges each object as it judges a file.
/// </summary>
public sealed class KubernetesPolicySourceTests : IAsyncDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly KubernetesApiReplay _api = new();

    private static string Recorded(string name) => KubernetesApiReplay.Recorded(name);

    private static string[] WatchEvents() => File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "testdata", "kubernetes", "accesspolicies-watch.jsonl"));

    private async Task<PolicyStore> StartStoreAsync()
    {
        var url = await _api.StartAsync();
        var client = new k8s.Kubernetes(new k8s.KubernetesClientConfiguration { Host = url });
        var source = new KubernetesPolicySource(client, url, TimeProvider.System, NullLogger<KubernetesPolicySource>.Instance);
        var settings = new ControlPlaneSettings(_temp.Path, "mesh.local", "127.0.0.1", 0, 0, 0, 0, TimeSpan.FromHours(1), MeshDefault.Deny);
        var store = new PolicyStore(new DataDirectory(_temp.Path), source, settings, TimeProvider.System, NullLogger<PolicyStore>.Instance);
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await store.LoadAsync(limit.Token);
        await store.StartAsync(CancellationToken.None);
        _stores.Add(store);
        return store;
    }

    private readonly List<PolicyStore> _stores = [];

    private static string[] InForce(PolicyStore store) => [.. store.Current.Set.Policies.Select(p => p.Id).Order(StringComparer.Ordinal)];

    [Fact]
    public async Task ListedPagesAreInForceBeforeAnythingIsServed()
    {
        _api.AccessPolicies.Lists.Enqueue(Recorded("accesspolicies-list-page1.json"));

        var store = await StartStoreAsync();

        Assert.Equal(["billing/ledger-writers", "shop/no-payments", "shop/orders-callers"], InForce(store));
        Assert.Equal(1, store.Current.Version);
        Assert.All(store.Current.Files, f => Assert.True(f.Accepted, f.File));
        Assert.Contains(store.Current.Files, f => f.File == "accesspolicy/shop/orders-callers");
        Assert.Equal(1, _api.AccessPolicies.ContinuedLists);
    }

    [Fact]
    public async Task WatchEventsAreAppliedAndAnObjectTheParserRefusesKeepsItsLastGoodVersion()
    {
        _api.AccessPolicies.Lists.Enqueue(Recorded("accesspolicies-list-page1.json"));
        _api.AccessPolicies.Lists.Enqueue(Recorded("accesspolicies-list-after-expiry.json"));
        var events = WatchEvents();
        var store = await StartStoreAsync();
        Assert.True(await Eventually.TrueAsync(() => _api.AccessPolicies.WatchVersions.Count == 1), "timed out waiting for the first watch");
        Assert.Equal("48300", _api.AccessPolicies.WatchVersions[0]);

        // ADDED, then a bookmark, then the server ends the watch: it is resumed at the bookmark's version, no relist.
        await _api.AccessPolicies.SendAsync(events[0]);
        Assert.True(await Eventually.TrueAsync(() => InForce(store).Contains("inventory/stock-readers")), "timed out waiting for the added object");
        await _api.AccessPolicies.SendAsync(events[1]);
        await _api.AccessPolicies.EndWatchAsync();
        Assert.True(await Eventually.TrueAsync(() => _api.AccessPolicies.WatchVersions.Count == 2), "timed out waiting for the resumed watch");
        Assert.Equal("48340", _api.AccessPolicies.WatchVersions[1]);
        Assert.Equal(1, _api.AccessPolicies.ListRequests);

        // MODIFIED into two rules of one name: refused whole, with where and why; its last good version stays.
        await _api.AccessPolicies.SendAsync(events[2]);
        Assert.True(await Eventually.TrueAsync(() => store.Current.Files.Any(f => f.File == "accesspolicy/shop/orders-callers" && !f.Accepted)), "timed out waiting for the refusal");
        var refused = store.Current.Files.Single(f => f.File == "accesspolicy/shop/orders-callers");
        Assert.Contains(refused.Errors, e => e.StartsWith("accesspolicy/shop/orders-callers:", StringComparison.Ordinal) && e.Contains("duplicate rule name 'frontend-orders'", StringComparison.Ordinal));
        var ordersCallers = store.Current.Set.Policies.Single(p => p.Id == "shop/orders-callers");
        Assert.Single(ordersCallers.Rules);

        // DELETED.
        await _api.AccessPolicies.SendAsync(events[3]);
        Assert.True(await Eventually.TrueAsync(() => !InForce(store).Contains("billing/ledger-writers")), "timed out waiting for the deletion");

        // 410 Expired: the source lists again and watches from the new list's version.
        await _api.AccessPolicies.SendAsync(events[4]);
        await _api.AccessPolicies.EndWatchAsync();
        Assert.True(await Eventually.TrueAsync(() => _api.AccessPolicies.WatchVersions.Count == 3), "timed out waiting for the watch after the relist");
        Assert.Equal(2, _api.AccessPolicies.ListRequests);
        Assert.Equal("48912", _api.AccessPolicies.WatchVersions[2]);
        Assert.True(await Eventually.TrueAsync(() => InForce(store).SequenceEqual(["billing/payments-callers", "inventory/stock-readers", "shop/orders-callers"])), "timed out waiting for the relisted set");
        Assert.Single(store.Current.Set.Policies.Single(p => p.Id == "shop/orders-callers").Rules);
    }

    [Fact]
    public async Task AnApiServerThatFailsIsAskedAgainAndTheLastObjectsStayInForce()
    {
        _api.AccessPolicies.Lists.Enqueue(Recorded("accesspolicies-list-page1.json"));
        var store = await StartStoreAsync();
        Assert.True(await Eventually.TrueAsync(() => _api.AccessPolicies.WatchVersions.Count == 1), "timed out waiting for the first watch");
        var version = store.Current.Version;

        // The watch breaks and the next lists answer 500: the set stays, the source keeps asking.
        _api.AccessPolicies.FailLists = true;
        await _api.AccessPolicies.EndWatchAsync();
        Assert.True(await Eventually.TrueAsync(() => _api.AccessPolicies.FailedLists >= 1), "timed out waiting for a failed relist");
        Assert.Equal(version, store.Current.Version);
        Assert.Equal(3, InForce(store).Length);

        _api.AccessPolicies.Lists.Clear();
        _api.AccessPolicies.Lists.Enqueue(Recorded("accesspolicies-list-after-expiry.json"));
        _api.AccessPolicies.FailLists = false;
        Assert.True(await Eventually.TrueAsync(() => InForce(store).Contains("billing/payments-callers")), "timed out waiting for the list after the failure");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.StopAsync(CancellationToken.None);
            store.Dispose();
        }
        await _api.DisposeAsync();
        _temp.Dispose();
    }
}
