using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;

namespace MeshGuard.ControlPlane.Store;

/// <summary>
/// AccessPolicy objects (meshguard.io/v1alpha1, all namespaces) from the Kubernetes API: a list, then a watch
/// from the list's resourceVersion (bookmarks on), as an informer does. Each object becomes one document named
/// <c>accesspolicy/NAMESPACE/NAME</c> holding only apiVersion, kind, name, namespace and spec, so the store's
/// parser judges exactly what the file store would. A watch that ends is resumed at the last version seen; an
/// expired version (410) or a broken connection lists again, after a growing pause; meanwhile the last objects
/// seen stay in force.
/// </summary>
internal sealed partial class KubernetesPolicySource(IKubernetes client, string server, TimeProvider time, ILogger<KubernetesPolicySource> logger) : IPolicySource
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

    public async Task WatchAsync(Action changed, CancellationToken cancellation)
    {
        var pause = TimeSpan.FromSeconds(1);
        while (!cancellation.IsCancellationRequested)
        {
            try
            {
                var version = await ListAsync(cancellation);
                changed();
                _synced.TrySetResult();
                pause = TimeSpan.FromSeconds(1);
                // Watch until the version expires or the connection breaks; a watch the server ends is resumed.
                while (version is not null)
                {
                    version = await WatchFromAsync(version, changed, cancellation);
                }
                LogRelist(logger, "the watched version expired");
            }
            catch (Exception e) when (e is HttpOperationException or HttpRequestException or IOException or KubernetesException or JsonException
                                      || (e is TaskCanceledException && !cancellation.IsCancellationRequested))
            {
                LogFailed(logger, server, e.Message, pause.TotalSeconds);
                await Task.Delay(pause, time, cancellation);
                pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
        }
    }

    /// <summary>Lists every page; replaces the documents; returns the list's resourceVersion.</summary>
    private async Task<string> ListAsync(CancellationToken cancellation)
    {
        var documents = new Dictionary<string, string>(StringComparer.Ordinal);
        string? next = null;
        string version;
        do
        {
            using var response = await client.CustomObjects.ListClusterCustomObjectWithHttpMessagesAsync<JsonElement>(
                Group, Version, Plural, continueParameter: next, limit: PageSize, cancellationToken: cancellation);
            var list = response.Body;
            foreach (var item in list.GetProperty("items").EnumerateArray())
            {
                var (name, text) = Document(item);
                documents[name] = text;
            }
            var metadata = list.GetProperty("metadata");
            version = metadata.GetProperty("resourceVersion").GetString() ?? "";
            next = metadata.TryGetProperty("continue", out var token) && token.GetString() is { Length: > 0 } more ? more : null;
        }
        while (next is not null);
        lock (_gate)
        {
            _documents = documents;
        }
        LogListed(logger, documents.Count, version);
        return version;
    }

    /// <summary>One watch request: applies its events; the version to resume at, or null when the version expired.</summary>
    private async Task<string?> WatchFromAsync(string version, Action changed, CancellationToken cancellation)
    {
        Exception? failure = null;
        var events = client.CustomObjects.WatchListClusterCustomObjectAsync(
            Group, Version, Plural, allowWatchBookmarks: true, resourceVersion: version, timeoutSeconds: (int)WatchTimeout.TotalSeconds,
            onError: e => failure = e, cancellationToken: cancellation);
        await foreach (var (type, body) in events)
        {
            var item = body is JsonElement element ? element : JsonSerializer.SerializeToElement(body);
            if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("metadata", out var metadata)
                && metadata.TryGetProperty("resourceVersion", out var seen) && seen.GetString() is { Length: > 0 } next)
            {
                version = next;
            }
            switch (type)
            {
                case WatchEventType.Added or WatchEventType.Modified:
                    var (name, text) = Document(item);
                    lock (_gate)
                    {
                        _documents[name] = text;
                    }
                    changed();
                    break;
                case WatchEventType.Deleted:
                    lock (_gate)
                    {
                        _documents.Remove(Document(item).Name);
                    }
                    changed();
                    break;
                default:
                    break; // bookmarks only move the version
            }
        }
        return failure switch
        {
            null => version,
            KubernetesException { Status.Code: 410 } => null,
            _ => throw failure,
        };
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

    [LoggerMessage(EventId = 70, Level = LogLevel.Information, Message = "kubernetes: listed {Count} AccessPolicy objects at version {Version}")]
    private static partial void LogListed(ILogger logger, int count, string version);

    [LoggerMessage(EventId = 71, Level = LogLevel.Information, Message = "kubernetes: listing AccessPolicy objects again: {Reason}")]
    private static partial void LogRelist(ILogger logger, string reason);

    [LoggerMessage(EventId = 72, Level = LogLevel.Warning, Message = "kubernetes: AccessPolicy list or watch at {Server} failed ({Reason}); the last objects seen stay in force; trying again in {Seconds}s")]
    private static partial void LogFailed(ILogger logger, string server, string reason, double seconds);
}
