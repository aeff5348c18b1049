using MeshGuard.ControlPlane.Registry;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshGuard.ControlPlane.Tests.Registry;

/// <summary>
/// The service table from the cluster's pods (testdata/kubernetes, replayed to the real KubernetesClient): only
/// running, Ready, injected pods with an IP are endpoints, and watch events add and remove them.
/// </summary>
public sealed class KubernetesEndpointSourceTests : IAsyncDisposable
{
    private readonly KubernetesApiReplay _api = new();
    private readonly ServiceRegistry _registry = new(data: null, acceptsRegistrations: false);
    private KubernetesEndpointSource? _source;

    private async Task StartAsync()
    {
        _api.Pods.Lists.Enqueue(KubernetesApiReplay.Recorded("pods-list.json"));
        var url = await _api.StartAsync();
        _source = new KubernetesEndpointSource(
            new k8s.Kubernetes(new k8s.KubernetesClientConfiguration { Host = url }), url, _registry, "mesh.local", TimeProvider.System,
            NullLogger<KubernetesEndpointSource>.Instance);
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await _source.LoadAsync(limit.Token);
        await _source.StartAsync(CancellationToken.None);
    }

    private string[] Endpoints(string service) =>
        [.. _registry.Current.Services.Where(s => s.Name == service).SelectMany(s => s.Endpoints).Select(e => $"{e.Address} {e.SpiffeId}").Order(StringComparer.Ordinal)];

    [Fact]
    public async Task OnlyRunningReadyInjectedPodsWithAnAddressAreEndpoints()
    {
        await StartAsync();

        Assert.Equal(["10.244.1.17:15006 spiffe://mesh.local/ns/shop/sa/orders"], Endpoints("orders"));
        Assert.Equal(["10.244.1.22:15006 spiffe://mesh.local/ns/shop/sa/frontend"], Endpoints("frontend"));
        Assert.Empty(Endpoints("coredns"));
        Assert.Equal(2, _registry.Current.Services.Count);
    }

    [Fact]
    public async Task WhatASidecarRegistersIsIgnoredWhenThePodsAreTheSource()
    {
        await StartAsync();
        var version = _registry.Current.Version;

        _registry.Register("orders", SpiffeId.ForWorkload("mesh.local", "shop", "orders"), "10.9.9.9:15006");

        Assert.Equal(version, _registry.Current.Version);
        Assert.DoesNotContain(Endpoints("orders"), e => e.StartsWith("10.9.9.9", StringComparison.Ordinal));
    }

    [Fact]
    public async Task APodThatBecomesReadyJoinsAndOneBeingDeletedLeaves()
    {
        await StartAsync();
        Assert.True(await Eventually.TrueAsync(() => _api.Pods.WatchVersions.Count == 1), "timed out waiting for the watch");
        Assert.Equal("51100", _api.Pods.WatchVersions[0]);
        var events = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "testdata", "kubernetes", "pods-watch.jsonl"));

        await _api.Pods.SendAsync(events[0]);
        Assert.True(await Eventually.TrueAsync(() => Endpoints("orders").Length == 2), "timed out waiting for the second replica");
        Assert.Contains("10.244.2.9:15006 spiffe://mesh.local/ns/shop/sa/orders", Endpoints("orders"));

        // Marked for deletion: out at once, before the DELETED event.
        await _api.Pods.SendAsync(events[1]);
        Assert.True(await Eventually.TrueAsync(() => Endpoints("orders").Length == 1), "timed out waiting for the terminating replica to leave");
        Assert.Equal(["10.244.2.9:15006 spiffe://mesh.local/ns/shop/sa/orders"], Endpoints("orders"));
        var version = _registry.Current.Version;
        await _api.Pods.SendAsync(events[2]);
        await Task.Delay(200);
        Assert.Equal(version, _registry.Current.Version);
    }

    public async ValueTask DisposeAsync()
    {
        if (_source is not null)
        {
            await _source.StopAsync(CancellationToken.None);
            _source.Dispose();
        }
        await _api.DisposeAsync();
    }
}
