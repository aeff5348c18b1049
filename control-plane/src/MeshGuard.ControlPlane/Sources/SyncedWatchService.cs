namespace MeshGuard.ControlPlane.Sources;

/// <summary>
/// A background watch of state the control plane must have read once before it serves (policies, the pods of a
/// cluster, the revocation list): <see cref="LoadAsync"/> starts it and waits for the first complete read
/// (<see cref="MarkSynced"/>), the host then keeps the same watch running until it stops.
/// </summary>
internal abstract class SyncedWatchService : BackgroundService
{
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _lifetime = new();
    private Task? _running;

    /// <summary>What is watched, for logs and startup errors.</summary>
    public abstract string Description { get; }

    /// <summary>Starts watching and waits for the first complete read (or the watch failing for good).</summary>
    public async Task LoadAsync(CancellationToken cancellation)
    {
        _running ??= WatchAsync(_lifetime.Token);
        await (await Task.WhenAny(_synced.Task.WaitAsync(cancellation), _running));
    }

    /// <summary>Completes with the first complete read.</summary>
    public Task Synced => _synced.Task;

    /// <summary>Runs the watch until cancelled.</summary>
    protected abstract Task WatchAsync(CancellationToken cancellation);

    /// <summary>The first complete read is in.</summary>
    protected void MarkSynced() => _synced.TrySetResult();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var stopping = stoppingToken.Register(_lifetime.Cancel);
        await (_running ??= WatchAsync(_lifetime.Token));
    }

    public override void Dispose()
    {
        _lifetime.Cancel();
        _lifetime.Dispose();
        base.Dispose();
    }
}
