using MeshGuard.ControlPlane.Sources;
using MeshGuard.Etcd;

namespace MeshGuard.ControlPlane.SharedState;

/// <summary>
/// AccessPolicy documents from etcd (<c>/meshguard/policies/NAME</c>, written by <c>meshctl policy apply --store</c>).
/// <see cref="EtcdMeshSync"/> pins the view the store reads, so the policies, the service table and the
/// revocation list of one mesh config come from one etcd revision.
/// </summary>
internal sealed class EtcdPolicySource(EtcdMeshState state) : IPolicySource
{
    private EtcdView? _pinned;

    public string Description => "etcd " + EtcdKeys.Policies;

    /// <summary>Makes <see cref="Read"/> answer from <paramref name="view"/>.</summary>
    public void Pin(EtcdView view) => Volatile.Write(ref _pinned, view);

    public IReadOnlyDictionary<string, string> Read()
    {
        var documents = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, text) in (Volatile.Read(ref _pinned) ?? state.Current).Under(EtcdKeys.Policies))
        {
            documents[EtcdKeys.Policies + name] = text;
        }
        return documents;
    }

    public Task SyncedAsync(CancellationToken cancellation) => state.Synced.WaitAsync(cancellation);

    // The sync reloads the store at each new view; nothing to do here but stay up.
    public Task WatchAsync(Action changed, CancellationToken cancellation) =>
        Task.Delay(Timeout.Infinite, cancellation).ContinueWith(static _ => { }, TaskScheduler.Default);
}
