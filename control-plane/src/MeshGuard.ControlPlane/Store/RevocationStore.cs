using MeshGuard.Contracts.DataDir;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Store;

/// <summary>
/// The revocation list in force, from <c>revocations.txt</c> in the data directory, or in a cluster from the
/// ConfigMap <c>meshguard-revocations</c> (<see cref="KubernetesRevocationSource"/> offers its text, so every
/// replica holds the same list). The file is looked at every 200 ms (its size and time of change), so a
/// revocation reaches the snapshot stream well within a second; a list with a bad line is refused and the
/// previous list stays.
/// </summary>
internal sealed partial class RevocationStore(DataDirectory data, TimeProvider time, ILogger<RevocationStore> logger, bool fromFile = true) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);
    private readonly ChangeSignal _changed = new();
    private RevocationList _current = fromFile ? Load(data, logger) : RevocationList.Empty;
    private (DateTime Written, long Length) _stamp = Stamp(data.Revocations);

    public RevocationList Current => Volatile.Read(ref _current);

    public Task Changed => _changed.Next;

    public bool IsRevoked(SpiffeId id) => Current.Contains(id);

    /// <summary>A new text of the list (from a cluster): in force if it parses, refused whole otherwise.</summary>
    public void Offer(string text, string source) => Apply(RevocationList.Parse(text, source, out var error), error);

    // One way in for every new list, from the file or a cluster: in force, or refused with the last good one kept.
    private void Apply(RevocationList list, string? error)
    {
        if (error is not null)
        {
            LogRefused(logger, error, Current.Ids.Count);
            return;
        }
        Volatile.Write(ref _current, list);
        _changed.Fire();
        LogLoaded(logger, list.Ids.Count);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (fromFile && !stoppingToken.IsCancellationRequested)
        {
            await Task.Delay(Interval, time, stoppingToken);
            var stamp = Stamp(data.Revocations);
            if (stamp == _stamp)
            {
                continue;
            }
            _stamp = stamp;
            Apply(RevocationList.Load(data.Revocations, out var error), error);
        }
    }

    private static RevocationList Load(DataDirectory data, ILogger logger)
    {
        var list = RevocationList.Load(data.Revocations, out var error);
        if (error is not null)
        {
            // At start there is no earlier list to keep: refuse to run rather than honour revoked identities.
            throw new InvalidOperationException(error);
        }
        if (list.Ids.Count > 0)
        {
            LogLoaded(logger, list.Ids.Count);
        }
        return list;
    }

    private static (DateTime, long) Stamp(string path)
    {
        var file = new FileInfo(path);
        return file.Exists ? (file.LastWriteTimeUtc, file.Length) : (DateTime.MinValue, -1);
    }

    [LoggerMessage(EventId = 60, Level = LogLevel.Warning, Message = "revocation list in force: {Count} identities")]
    private static partial void LogLoaded(ILogger logger, int count);

    [LoggerMessage(EventId = 61, Level = LogLevel.Error, Message = "revocation list refused: {Error}; the previous list of {Count} identities stays in force")]
    private static partial void LogRefused(ILogger logger, string error, int count);
}
