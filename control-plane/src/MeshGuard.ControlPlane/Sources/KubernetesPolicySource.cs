using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using MeshGuard.ControlPlane.Kubernetes;

namespace MeshGuard.ControlPlane.Sources;

/// <summary>
/// AccessPolicy objects (meshguard.io/v1alpha1, all namespaces) from the Kubernetes API: a list, then a watch
/// from the list's resourceVersion (bookmarks on), as an informer does. Each object becomes one document named
/// <c>accesspolicy/NAMESPACE/NAME</c> holding only apiVersion, kind, name, namespace and spec, so the store's
/// parser judges exactly what the file store would. <see cref="ResourceWatch{T}"/> keeps the view: resumed
/// watches, relists after 410 or failures, the last objects seen in force meanwhile.
/// </summary>
internal sealed class KubernetesPolicySource(IKubernetes client, string server, TimeProvider time, ILogger<KubernetesPolicySource> logger) : IPolicySource
{
    public const string Group = "meshguard.io";
    public const string Version = "v1alpha1";
    public const string Plural = "accesspolicies";
    private const int PageSize = 500;
    private static readonly TimeSpan WatchTimeout = TimeSpan.FromMinutes(5);

    private readonly Lock _gate = new();
    private Dictionary<string, string> _documents = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Description => "kubernetes " + server;

    public IReadOnlyDictionary<string, string> Read()
    {
        lock (_gate)
        {
            return new Dictionary<string, string>(_documents, StringComparer.Ordinal);
        }
    }

    public Task SyncedAsync(CancellationToken cancellation) => _synced.Task.WaitAsync(cancellation);

    public Task WatchAsync(Action changed, CancellationToken cancellation)
    {
        var watch = new ResourceWatch<JsonElement>(
            "AccessPolicy objects at " + server,
            ListPageAsync,
            (version, onError, token) => WatchFrom(version, onError, token),
            static item => item.ValueKind == JsonValueKind.Object && item.TryGetProperty("metadata", out var metadata)
                && metadata.TryGetProperty("resourceVersion", out var version) ? version.GetString() : null,
            time,
            logger);
        return watch.RunAsync(
            items =>
            {
                var documents = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var item in items)
                {
                    var (name, text) = Document(item);
                    documents[name] = text;
                }
                lock (_gate)
                {
                    _documents = documents;
                }
                changed();
                _synced.TrySetResult();
            },
            (type, item) =>
            {
                var (name, text) = Document(item);
                lock (_gate)
                {
                    if (type == WatchEventType.Deleted)
                    {
                        _documents.Remove(name);
                    }
                    else
                    {
                        _documents[name] = text;
                    }
                }
                changed();
            },
            cancellation);
    }

    private async Task<ResourcePage<JsonElement>> ListPageAsync(string? next, CancellationToken cancellation)
    {
        using var response = await client.CustomObjects.ListClusterCustomObjectWithHttpMessagesAsync<JsonElement>(
            Group, Version, Plural, continueParameter: next, limit: PageSize, cancellationToken: cancellation);
        var list = response.Body;
        var items = new List<JsonElement>();
        foreach (var item in list.GetProperty("items").EnumerateArray())
        {
            items.Add(item.Clone());
        }
        var metadata = list.GetProperty("metadata");
        return new ResourcePage<JsonElement>(
            items,
            metadata.GetProperty("resourceVersion").GetString() ?? "",
            metadata.TryGetProperty("continue", out var token) && token.GetString() is { Length: > 0 } more ? more : null);
    }

    private async IAsyncEnumerable<(WatchEventType, JsonElement)> WatchFrom(
        string version, Action<Exception> onError, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellation)
    {
        var events = client.CustomObjects.WatchListClusterCustomObjectAsync(
            Group, Version, Plural, allowWatchBookmarks: true, resourceVersion: version, timeoutSeconds: (int)WatchTimeout.TotalSeconds,
            onError: onError, cancellationToken: cancellation);
        await foreach (var (type, body) in events)
        {
            yield return (type, body is JsonElement element ? element : JsonSerializer.SerializeToElement(body));
        }
    }

    /// <summary>The object as a policy document: only what the file format has, indented so errors point at a line.</summary>
    private static (string Name, string Text) Document(JsonElement item)
    {
        var metadata = item.GetProperty("metadata");
        var ns = metadata.TryGetProperty("namespace", out var n) ? n.GetString() ?? "" : "";
        var name = metadata.GetProperty("name").GetString() ?? "";
        var document = new JsonObject
        {
            ["apiVersion"] = item.GetProperty("apiVersion").GetString(),
            ["kind"] = item.GetProperty("kind").GetString(),
            ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = ns },
        };
        if (item.TryGetProperty("spec", out var spec))
        {
            document["spec"] = JsonNode.Parse(spec.GetRawText());
        }
        return ($"accesspolicy/{ns}/{name}", document.ToJsonString(Indented));
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
