using System.Text.Json;
using k8s;
using k8s.Autorest;

namespace MeshGuard.ControlPlane.Kubernetes;

/// <summary>One page of a list: its items, the list's resourceVersion, and the continue token of the next page.</summary>
internal readonly record struct ResourcePage<T>(IReadOnlyList<T> Items, string Version, string? Continue)
{
    /// <summary>A page of a typed list, from its items and list metadata.</summary>
    public static ResourcePage<T> Of(IList<T> items, k8s.Models.V1ListMeta? metadata) =>
        new([.. items], metadata?.ResourceVersion ?? "", metadata?.ContinueProperty is { Length: > 0 } more ? more : null);
}

/// <summary>
/// Keeps a local view of one kind of Kubernetes object as an informer does: list every page, then watch from
/// the list's resourceVersion (bookmarks on); a watch the server ends is resumed at the last version seen; an
/// expired version (410) or a failed request lists again after a growing pause (1 s to 30 s), the view staying
/// as it was meanwhile.
/// </summary>
internal sealed partial class ResourceWatch<T>(
    string what,
    Func<string?, CancellationToken, Task<ResourcePage<T>>> listPage,
    Func<string, Action<Exception>, CancellationToken, IAsyncEnumerable<(WatchEventType Type, T Item)>> watchFrom,
    Func<T, string?> versionOf,
    TimeProvider time,
    ILogger logger)
{
    private static readonly TimeSpan FirstPause = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LongestPause = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Runs until cancelled: <paramref name="replaced"/> gets every complete list, <paramref name="changed"/> each
    /// added, modified or deleted object after it.
    /// </summary>
    public async Task RunAsync(Action<IReadOnlyList<T>> replaced, Action<WatchEventType, T> changed, CancellationToken cancellation)
    {
        var pause = FirstPause;
        while (!cancellation.IsCancellationRequested)
        {
            try
            {
                var items = new List<T>();
                string? next = null;
                string version;
                do
                {
                    var page = await listPage(next, cancellation);
                    items.AddRange(page.Items);
                    version = page.Version;
                    next = page.Continue;
                }
                while (next is not null);
                replaced(items);
                LogListed(logger, what, items.Count, version);
                pause = FirstPause;
                string? resumeAt = version;
                while (resumeAt is not null)
                {
                    resumeAt = await WatchAsync(resumeAt, changed, cancellation);
                }
                LogRelist(logger, what);
            }
            catch (Exception e) when (e is HttpOperationException or HttpRequestException or IOException or KubernetesException or JsonException
                                      || (e is TaskCanceledException && !cancellation.IsCancellationRequested))
            {
                LogFailed(logger, what, e.Message, pause.TotalSeconds);
                await Task.Delay(pause, time, cancellation);
                pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, LongestPause.Ticks));
            }
        }
    }

    /// <summary>One watch request; the version to resume at, or null when the version expired.</summary>
    private async Task<string?> WatchAsync(string version, Action<WatchEventType, T> changed, CancellationToken cancellation)
    {
        Exception? failure = null;
        await foreach (var (type, item) in watchFrom(version, e => failure = e, cancellation))
        {
            if (item is not null && versionOf(item) is { Length: > 0 } seen)
            {
                version = seen;
            }
            if (type is WatchEventType.Added or WatchEventType.Modified or WatchEventType.Deleted && item is not null)
            {
                changed(type, item);
            }
        }
        return failure switch
        {
            null => version,
            KubernetesException { Status.Code: 410 } => null,
            _ => throw failure,
        };
    }

    [LoggerMessage(EventId = 70, Level = LogLevel.Information, Message = "kubernetes: listed {Count} {What} at version {Version}")]
    private static partial void LogListed(ILogger logger, string what, int count, string version);

    [LoggerMessage(EventId = 71, Level = LogLevel.Information, Message = "kubernetes: listing {What} again: the watched version expired")]
    private static partial void LogRelist(ILogger logger, string what);

    [LoggerMessage(EventId = 72, Level = LogLevel.Warning, Message = "kubernetes: {What} list or watch failed ({Reason}); the last objects seen stay in force; trying again in {Seconds}s")]
    private static partial void LogFailed(ILogger logger, string what, string reason, double seconds);
}
