using MeshGuard.ControlPlane.Common.DataDir;

namespace MeshGuard.ControlPlane.Sources;

/// <summary>
/// The embedded source: <c>DATA/policies/**/*.yaml</c>, named by their path under the data directory, watched
/// with a periodic rescan for what the watcher misses (editors, network file systems).
/// </summary>
internal sealed class PolicyFileSource : IPolicySource
{
    private static readonly TimeSpan Rescan = TimeSpan.FromSeconds(2);
    private readonly DataDirectory _data;
    private readonly TimeProvider _time;

    public PolicyFileSource(DataDirectory data, TimeProvider time)
    {
        _data = data;
        _time = time;
        Directory.CreateDirectory(data.PoliciesDirectory);
    }

    public string Description => "files " + _data.PoliciesDirectory;

    public IReadOnlyDictionary<string, string> Read()
    {
        var documents = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(_data.PoliciesDirectory, "*.*", SearchOption.AllDirectories))
        {
            if (!file.EndsWith(".yaml", StringComparison.Ordinal) && !file.EndsWith(".yml", StringComparison.Ordinal))
            {
                continue;
            }
            try
            {
                documents[Path.GetRelativePath(_data.Root, file)] = File.ReadAllText(file);
            }
            catch (IOException)
            {
                // Being written: the next event or rescan reads it; until then its last version stays.
                documents[Path.GetRelativePath(_data.Root, file)] = PolicyStore.Unreadable;
            }
        }
        return documents;
    }

    public Task SyncedAsync(CancellationToken cancellation) => Task.CompletedTask;

    public async Task WatchAsync(Action changed, CancellationToken cancellation)
    {
        using var watcher = new FileSystemWatcher(_data.PoliciesDirectory)
        {
            IncludeSubdirectories = true,
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.DirectoryName,
        };
        watcher.Changed += (_, _) => changed();
        watcher.Created += (_, _) => changed();
        watcher.Deleted += (_, _) => changed();
        watcher.Renamed += (_, _) => changed();
        watcher.EnableRaisingEvents = true;
        while (!cancellation.IsCancellationRequested)
        {
            await Task.Delay(Rescan, _time, cancellation);
            changed();
        }
    }
}
