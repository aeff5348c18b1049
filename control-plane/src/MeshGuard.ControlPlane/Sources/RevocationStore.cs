using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Sources;

/// <summary>
/// The revocation list in force, from <c>revocations.txt</c> in the data directory, or in a cluster from the
/// ConfigMap <c>meshguard-revocations</c> (<see cref="KubernetesRevocationSource"/> offers its text, so every
/// replica holds the same list). The file is looked at every 200 ms (its size and time of change), so a
/// revocation reaches the snapshot stream well within a second; a list with a bad line is refused and the
/// previous list stays.
/// </summary>
internal sealed partial class RevocationStore : BackgroundService
{
    private readonly WatchedDocument<RevocationList> _list;
    private readonly ILogger<RevocationStore> _logger;
    private readonly bool _fromFile;

    public RevocationStore(DataDirectory data, TimeProvider time, ILogger<RevocationStore> logger, bool fromFile = true)
    {
        _list = new WatchedDocument<RevocationList>(data.Revocations, RevocationList.Empty, RevocationList.Parse, time);
        _logger = logger;
        _fromFile = fromFile;
        if (fromFile && _list.LoadFile().Ids.Count > 0)
        {
            LogLoaded(logger, Current.Ids.Count);
        }
    }

    public RevocationList Current => _list.Current;

    public Task Changed => _list.Changed;

    public bool IsRevoked(SpiffeId id) => Current.Contains(id);

    /// <summary>A new text of the list (from a cluster or etcd): in force if it parses, refused whole otherwise.</summary>
    public void Offer(string text, string source) => Report(Current, _list.Offer(text, source));

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _fromFile ? _list.WatchFileAsync(Report, stoppingToken) : Task.CompletedTask;

    private void Report(RevocationList list, string? error)
    {
        if (error is not null)
        {
            LogRefused(_logger, error, list.Ids.Count);
        }
        else
        {
            LogLoaded(_logger, list.Ids.Count);
        }
    }

    [LoggerMessage(EventId = 60, Level = LogLevel.Warning, Message = "revocation list in force: {Count} identities")]
    private static partial void LogLoaded(ILogger logger, int count);

    [LoggerMessage(EventId = 61, Level = LogLevel.Error, Message = "revocation list refused: {Error}; the previous list of {Count} identities stays in force")]
    private static partial void LogRefused(ILogger logger, string error, int count);
}
