namespace MeshGuard.Proxy.Outbound.Resilience;

/// <summary>Counters of the outbound side's resilience, read by /metrics.</summary>
internal sealed class OutboundMetrics
{
    private long _retries;
    private long _circuitsOpened;
    private long _noEndpoint;
    private long _ejections;

    /// <summary>Tries after the first.</summary>
    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>Times an endpoint was ejected for consecutive failures (passive health).</summary>
    public long Ejections => Interlocked.Read(ref _ejections);

    /// <summary>Times an endpoint's circuit opened (its failure ratio crossed the threshold).</summary>
    public long CircuitsOpened => Interlocked.Read(ref _circuitsOpened);

    /// <summary>Requests answered 503 at once because every endpoint of the service had its circuit open.</summary>
    public long NoEndpoint => Interlocked.Read(ref _noEndpoint);

    public void Retry() => Interlocked.Increment(ref _retries);

    public void Ejected() => Interlocked.Increment(ref _ejections);

    public void CircuitOpened() => Interlocked.Increment(ref _circuitsOpened);

    public void NoAvailableEndpoint() => Interlocked.Increment(ref _noEndpoint);
}
