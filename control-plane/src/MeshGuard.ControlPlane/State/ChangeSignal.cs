namespace MeshGuard.ControlPlane.State;

/// <summary>
/// "Something changed" for watchers that read a published value and then wait: <see cref="Next"/> completes
/// on the first <see cref="Fire"/> after it was read. Take <see cref="Next"/> before reading the value, so that
/// no change can slip between the two.
/// </summary>
internal sealed class ChangeSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Next => Volatile.Read(ref _next).Task;

    /// <summary>Wakes every waiter of the current <see cref="Next"/> and arms a new one. Call after publishing.</summary>
    public void Fire() =>
        Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).SetResult();
}
