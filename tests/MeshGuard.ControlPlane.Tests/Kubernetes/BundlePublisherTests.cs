using System.Text.Json.Nodes;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Kubernetes;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshGuard.ControlPlane.Tests.Kubernetes;

/// <summary>The trust bundle written into labelled namespaces, against the replayed API: created, corrected, left alone.</summary>
public sealed class BundlePublisherTests : IAsyncDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly KubernetesApiReplay _api = new();
    private BundlePublisher? _publisher;

    private static string Namespace(string name, int version) => new JsonObject
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Namespace",
        ["metadata"] = new JsonObject
        {
            ["name"] = name,
            ["labels"] = new JsonObject { ["kubernetes.io/metadata.name"] = name, ["meshguard.io/inject"] = "enabled" },
            ["resourceVersion"] = version.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["uid"] = Guid.NewGuid().ToString(),
            ["creationTimestamp"] = "2026-11-20T09:00:00Z",
        },
        ["spec"] = new JsonObject { ["finalizers"] = new JsonArray("kubernetes") },
        ["status"] = new JsonObject { ["phase"] = "Active" },
    }.ToJsonString();

    private string BundleIn(string ns) =>
        (string)JsonNode.Parse(_api.WrittenConfigMaps[$"{ns}/meshguard-ca-bundle"])!["data"]!["bundle.pem"]!;

    [Fact]
    public async Task LabelledNamespacesGetTheBundleAStaleOneIsReplacedAndARightOneIsLeftAlone()
    {
        var data = new DataDirectory(_temp.Path);
        var ca = CertificateAuthority.LoadOrCreate(data, "mesh.local", TimeProvider.System);
        var bundle = ca.Bundle.ToPem();
        _api.Namespaces.Lists.Enqueue($$"""{"kind":"NamespaceList","apiVersion":"v1","metadata":{"resourceVersion":"900"},"items":[{{Namespace("shop", 10)}},{{Namespace("billing", 11)}}]}""");
        _api.WrittenConfigMaps["billing/meshguard-ca-bundle"] =
            """{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"meshguard-ca-bundle","namespace":"billing","resourceVersion":"12"},"data":{"bundle.pem":"an old root"}}""";
        var url = await _api.StartAsync();
        _publisher = new BundlePublisher(new k8s.Kubernetes(new k8s.KubernetesClientConfiguration { Host = url }), ca, TimeProvider.System, NullLogger<BundlePublisher>.Instance);

        await _publisher.StartAsync(CancellationToken.None);

        Assert.True(await Eventually.TrueAsync(() => _api.Writes.Count >= 2), "timed out waiting for both namespaces");
        Assert.Equal(["POST shop/meshguard-ca-bundle", "PUT billing/meshguard-ca-bundle"], _api.Writes.Order(StringComparer.Ordinal));
        Assert.Equal(bundle, BundleIn("shop"));
        Assert.Equal(bundle, BundleIn("billing"));

        // A namespace labelled later gets it; one that already has the right bundle gets no write.
        Assert.True(await Eventually.TrueAsync(() => _api.Namespaces.WatchVersions.Count == 1), "timed out waiting for the namespace watch");
        await _api.Namespaces.SendAsync($$"""{"type":"MODIFIED","object":{{Namespace("shop", 920)}}}""");
        await _api.Namespaces.SendAsync($$"""{"type":"ADDED","object":{{Namespace("inventory", 921)}}}""");
        Assert.True(await Eventually.TrueAsync(() => _api.WrittenConfigMaps.ContainsKey("inventory/meshguard-ca-bundle")), "timed out waiting for the new namespace");
        Assert.Equal(3, _api.Writes.Count);
        Assert.Equal(bundle, BundleIn("inventory"));
    }

    public async ValueTask DisposeAsync()
    {
        if (_publisher is not null)
        {
            await _publisher.StopAsync(CancellationToken.None);
            _publisher.Dispose();
        }
        await _api.DisposeAsync();
        _temp.Dispose();
    }
}
