using System.Security.Cryptography;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.State;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Policy.Parsing;

namespace MeshGuard.ControlPlane.Sources;

/// <summary>
/// The policy store: the documents of its source (the data directory's policy files, or a cluster's
/// AccessPolicy objects), each taken or refused whole; a refused document keeps its last good version in force.
/// Every accepted change publishes a new <see cref="PolicySet"/> with a higher version and writes the state
/// meshctl reads.
/// </summary>
internal sealed partial class PolicyStore : SyncedWatchService
{
    /// <summary>A document the source could not read this time: whatever it had stays as it was.</summary>
    public const string Unreadable = "\0unreadable";

    private static readonly TimeSpan Debounce = TimeSpan.FromMilliseconds(100);

    private readonly DataDirectory _data;
    private readonly IPolicySource _source;
    private readonly MeshDefault _meshDefault;
    private readonly TimeProvider _time;
    private readonly ILogger<PolicyStore> _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, FileState> _files = new(StringComparer.Ordinal);
    private PolicySnapshot _current;
    private readonly ChangeSignal _changed = new();
    private readonly SemaphoreSlim _wake = new(0);

    public PolicyStore(DataDirectory data, IPolicySource source, ControlPlaneSettings settings, TimeProvider time, ILogger<PolicyStore> logger)
    {
        _data = data;
        _source = source;
        _meshDefault = settings.MeshDefault;
        _time = time;
        _logger = logger;
        _current = new PolicySnapshot(0, new PolicySet([], _meshDefault), []);
    }

    public override string Description => "AccessPolicies from " + _source.Description;

    private sealed record FileState(string Hash, IReadOnlyList<AccessPolicy> InForce, IReadOnlyList<PolicyError> Errors, bool HasGoodVersion);

    public PolicySnapshot Current => Volatile.Read(ref _current);

    /// <summary>Completes on the next published change.</summary>
    public Task Changed => _changed.Next;

    /// <summary>Rereads the directory; publishes a new version if what is in force changed.</summary>
    public void Reload()
    {
        lock (_gate)
        {
            var present = new HashSet<string>(StringComparer.Ordinal);
            var changed = false;
            foreach (var (file, text) in _source.Read())
            {
                present.Add(file);
                if (ReferenceEquals(text, Unreadable))
                {
                    continue;
                }
                var hash = Convert.ToHexString(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
                if (_files.TryGetValue(file, out var known) && known.Hash == hash)
                {
                    continue;
                }
                var result = PolicyParser.Parse(text, file);
                if (result.IsValid)
                {
                    _files[file] = new FileState(hash, result.Policies, [], true);
                    LogAccepted(_logger, file, result.Policies.Count);
                    changed = true;
                }
                else
                {
                    var keep = known is { HasGoodVersion: true } ? known.InForce : [];
                    _files[file] = new FileState(hash, keep, result.Errors, known?.HasGoodVersion ?? false);
                    foreach (var error in result.Errors)
                    {
                        LogRefused(_logger, error.ToString(), known?.HasGoodVersion == true ? "its last good version stays in force" : "it has no good version");
                    }
                    changed = true;
                }
            }
            foreach (var gone in _files.Keys.Where(f => !present.Contains(f)).ToList())
            {
                _files.Remove(gone);
                LogRemoved(_logger, gone);
                changed = true;
            }
            if (changed || _current.Version == 0)
            {
                Publish();
            }
        }
    }

    private void Publish()
    {
        // A name taken by an earlier file (in path order) refuses the later file, keeping its last good version.
        var ordered = _files.OrderBy(static f => f.Key, StringComparer.Ordinal).ToList();
        var owners = new Dictionary<string, string>(StringComparer.Ordinal);
        var inForce = new List<AccessPolicy>();
        var statuses = new List<PolicyStateFile>();
        foreach (var (file, state) in ordered)
        {
            var errors = state.Errors.ToList();
            var policies = state.InForce;
            var clash = policies.FirstOrDefault(p => owners.ContainsKey(p.Id));
            if (clash is not null)
            {
                errors.Add(new PolicyError(file, clash.Location?.Line ?? 1, clash.Location?.Column ?? 1,
                    $"duplicate policy name '{clash.Id}': already defined in {owners[clash.Id]}"));
                policies = [];
            }
            foreach (var policy in policies)
            {
                owners[policy.Id] = file;
            }
            inForce.AddRange(policies);
            statuses.Add(new PolicyStateFile(file, errors.Count == 0, policies.Select(static p => p.Id).ToList(), errors.Select(static e => e.ToString()).ToList()));
        }
        // A refused file changes what people see, not what is enforced: keep the set (and its version) then.
        var unchanged = _current.Version > 0 && inForce.SequenceEqual(_current.Set.Policies);
        var snapshot = unchanged
            ? _current with { Files = statuses }
            : new PolicySnapshot(_current.Version + 1, new PolicySet(inForce, _meshDefault), statuses);
        PolicyState.Write(_data, snapshot.Version, _meshDefault, inForce, statuses, _time.GetUtcNow());
        Volatile.Write(ref _current, snapshot);
        _changed.Fire();
        LogPublished(_logger, snapshot.Version, inForce.Count, statuses.Count(static s => !s.Accepted));
    }

    /// <summary>
    /// Watches the source; after its first complete read publishes the first version and counts as synced. Before
    /// that nothing is served: a sidecar must never get an empty set that only means "not read yet".
    /// </summary>
    protected override async Task WatchAsync(CancellationToken cancellation)
    {
        var watching = _source.WatchAsync(() => _wake.Release(), cancellation);
        await Task.WhenAny(_source.SyncedAsync(cancellation), watching);
        if (watching.IsCompleted)
        {
            await watching; // a source that stops on its own has failed: let the host see it
            return;
        }
        Reload();
        MarkSynced();
        while (!cancellation.IsCancellationRequested)
        {
            await Task.WhenAny(_wake.WaitAsync(cancellation), watching);
            if (watching.IsCompleted)
            {
                await watching;
                return;
            }
            await Task.Delay(Debounce, _time, cancellation);
            while (_wake.CurrentCount > 0)
            {
                await _wake.WaitAsync(cancellation);
            }
            Reload();
        }
    }

    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "policy document {File} accepted: {Count} policies")]
    private static partial void LogAccepted(ILogger logger, string file, int count);

    [LoggerMessage(EventId = 41, Level = LogLevel.Error, Message = "policy document refused, {Consequence}: {Error}")]
    private static partial void LogRefused(ILogger logger, string error, string consequence);

    [LoggerMessage(EventId = 42, Level = LogLevel.Information, Message = "policy document {File} removed")]
    private static partial void LogRemoved(ILogger logger, string file);

    [LoggerMessage(EventId = 43, Level = LogLevel.Information, Message = "policy version {Version}: {Policies} policies in force, {Refused} documents refused")]
    private static partial void LogPublished(ILogger logger, long version, int policies, int refused);
}

/// <summary>What is in force: a version, the compiled set, and each file's state.</summary>
internal sealed record PolicySnapshot(long Version, PolicySet Set, IReadOnlyList<PolicyStateFile> Files);
