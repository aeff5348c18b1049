namespace MeshGuard.Proxy.ControlPlaneClient;

/// <summary>
/// Exponential backoff between retries: doubles from a minimum up to a maximum; reset after a success. Each
/// wait is jittered (80-120%) so that a fleet that lost its control plane together does not return together.
/// </summary>
internal struct Backoff(TimeSpan min, TimeSpan max)
{
    private readonly TimeSpan _min = min;
    private readonly TimeSpan _max = max;
    private TimeSpan _next = min;

    // Not async: the struct must update itself, not a copy of itself.
    public Task DelayAsync(TimeProvider time, CancellationToken cancellation) => DelayAsync(time, TimeSpan.MaxValue, cancellation);

    /// <summary>Waits the next backoff step, but never longer than <paramref name="limit"/> (an SVID's time left).</summary>
    public Task DelayAsync(TimeProvider time, TimeSpan limit, CancellationToken cancellation)
    {
        var wait = _next < limit ? _next : limit;
        wait = wait < _min ? _min : wait;
        wait *= 0.8 + (0.4 * Random.Shared.NextDouble());
        _next = _next * 2 > _max ? _max : _next * 2;
        return Task.Delay(wait, time, cancellation);
    }

    public void Reset() => _next = _min;
}
