using System.Collections.Immutable;
using Etcdserverpb;
using Grpc.Core;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.ControlPlane.State;
using MeshGuard.Etcd;

namespace MeshGuard.ControlPlane.SharedState;

/// <summary>
/// What the mesh config is made of, as etcd holds it: the keys of policies, registrations and the revocation
/// list, and the etcd revision they were read at. Listed once, then watched from the next revision; a watch
/// that breaks resumes at the revision it had (on the next member if its member is gone), and one whose
/// revision was compacted away lists again. Meanwhile the last view stays in force.
/// </summary>
internal sealed partial class EtcdMeshState(EtcdConnection etcd, TimeProvider time, ILogger<EtcdMeshState> logger) : SyncedWatchService
{
    // policies/ < registrations/ < revocations: one range holds the three and nothing else of MeshGuard's.
    private static readonly Google.Protobuf.ByteString From = EtcdKeys.Key(EtcdKeys.Policies);
    private static readonly Google.Protobuf.ByteString To = EtcdKeys.Key(EtcdKeys.Revocations + "\0");
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(5);

    private EtcdView _current = EtcdView.Empty;
    private readonly ChangeSignal _changed = new();

    public override string Description => $"the mesh state in etcd {etcd.Location}";

    public EtcdView Current => Volatile.Read(ref _current);

    /// <summary>Completes on the next new view.</summary>
    public Task Changed => _changed.Next;

    /// <summary>Whether the watch is up (for /readyz and the tests of an etcd restart).</summary>
    public bool Connected { get; private set; }

    protected override async Task WatchAsync(CancellationToken cancellation)
    {
        var backoff = MinBackoff;
        var listed = false;
        while (!cancellation.IsCancellationRequested)
        {
            var member = etcd.Member;
            try
            {
                if (!listed)
                {
                    await ListAsync(cancellation);
                    listed = true;
                    MarkSynced();
                }
                listed = await FollowAsync(member, () => backoff = MinBackoff, cancellation);
                if (!listed)
                {
                    // A watch etcd refuses every time must not turn into a tight list-and-watch loop.
                    await Task.Delay(MinBackoff, time, cancellation);
                }
            }
            catch (Exception e) when (e is RpcException or IOException && !cancellation.IsCancellationRequested)
            {
                Connected = false;
                LogBroken(logger, member.ToString(), e.Message, backoff.TotalMilliseconds);
                etcd.Failover(member);
                await Task.Delay(backoff, time, cancellation);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            }
        }
    }

    private async Task ListAsync(CancellationToken cancellation)
    {
        var range = await etcd.RangeAsync(new RangeRequest { Key = From, RangeEnd = To }, cancellation);
        var keys = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var kv in range.Kvs)
        {
            keys[kv.Key.ToStringUtf8()] = kv.Value.ToStringUtf8();
        }
        Publish(new EtcdView(range.Header.Revision, keys.ToImmutable()));
        LogListed(logger, range.Kvs.Count, range.Header.Revision, etcd.Member.ToString());
    }

    /// <summary>Follows the watch until it breaks; false when it must list again (its revision was compacted).</summary>
    private async Task<bool> FollowAsync(Uri member, Action healthy, CancellationToken cancellation)
    {
        using var call = etcd.WatchClient().Watch(cancellationToken: cancellation);
        await call.RequestStream.WriteAsync(new WatchRequest
        {
            CreateRequest = new WatchCreateRequest { Key = From, RangeEnd = To, StartRevision = Current.Revision + 1 },
        }, cancellation);
        while (await call.ResponseStream.MoveNext(cancellation))
        {
            var response = call.ResponseStream.Current;
            if (response.CompactRevision > 0 || response.Canceled)
            {
                LogRelist(logger, Current.Revision, response.CompactRevision, response.CancelReason);
                return false;
            }
            if (response.Created)
            {
                Connected = true;
                healthy();
                LogWatching(logger, member.ToString(), Current.Revision + 1);
                continue;
            }
            if (response.Events.Count == 0)
            {
                continue;
            }
            var keys = Current.Keys.ToBuilder();
            foreach (var change in response.Events)
            {
                var key = change.Kv.Key.ToStringUtf8();
                if (change.Type == Mvccpb.Event.Types.EventType.Delete)
                {
                    keys.Remove(key);
                }
                else
                {
                    keys[key] = change.Kv.Value.ToStringUtf8();
                }
            }
            Publish(new EtcdView(response.Header.Revision, keys.ToImmutable()));
        }
        throw new IOException("etcd ended the watch");
    }

    private void Publish(EtcdView view)
    {
        Volatile.Write(ref _current, view);
        _changed.Fire();
    }

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "etcd: listed {Count} keys at revision {Revision} from {Member}")]
    private static partial void LogListed(ILogger logger, int count, long revision, string member);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "etcd: watching {Member} from revision {Revision}")]
    private static partial void LogWatching(ILogger logger, string member, long revision);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "etcd: watch on {Member} broke ({Reason}); the last state stays in force, trying again in {Delay} ms")]
    private static partial void LogBroken(ILogger logger, string member, string reason, double delay);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "etcd: watch from revision {Revision} refused (compacted at {Compacted}; {Reason}); listing again")]
    private static partial void LogRelist(ILogger logger, long revision, long compacted, string reason);
}

/// <summary>The watched keys at one etcd revision.</summary>
internal sealed record EtcdView(long Revision, ImmutableSortedDictionary<string, string> Keys)
{
    public static EtcdView Empty { get; } = new(0, ImmutableSortedDictionary.Create<string, string>(StringComparer.Ordinal));

    /// <summary>The keys under <paramref name="prefix"/>, without it.</summary>
    public IEnumerable<KeyValuePair<string, string>> Under(string prefix)
    {
        foreach (var (key, value) in Keys)
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal))
            {
                yield return new(key[prefix.Length..], value);
            }
        }
    }
}
