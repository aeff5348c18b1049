namespace MeshGuard.Proxy.Outbound.Resilience;

/// <summary>
/// One endpoint's health as its callers see it, from the outcomes of real tries, and its tries in flight for
/// least-requests balancing. Two signals take an endpoint out of balancing:
/// <list type="bullet">
/// <item>passive health (Envoy's outlier detection): consecutive failed tries eject it at once, for a break
/// that grows with each ejection in a row; when the break ends it takes requests again, and one more failure
/// ejects it again, while a success clears its record;</item>
/// <item>a circuit breaker (<see cref="FailureRatioBreaker"/>): a failure ratio over a sampling window opens the
/// circuit; when its break ends one trial call decides whether it closes or stays open for longer.</item>
/// </list>
/// A dead endpoint is caught by the first (a ratio needs as many failures as the window holds successes);
/// an endpoint that fails some of its requests, by the second. Built once per endpoint, never per request.
/// </summary>
internal sealed class EndpointCircuit
{
    private readonly FailureRatioBreaker _breaker;
    private readonly TimeProvider _time;
    private readonly OutboundMetrics _metrics;
    private readonly int _consecutiveToEject;
    private readonly TimeSpan _breakDuration;
    private readonly TimeSpan _maxBreak;
    private long _ejectedUntil;
    private int _consecutiveFailures;
    private int _ejectionsInARow;
    private int _inFlight;

    public EndpointCircuit(OutboundResilience settings, TimeProvider time, OutboundMetrics metrics)
    {
        _time = time;
        _metrics = metrics;
        _breakDuration = settings.CircuitBreakDuration;
        _maxBreak = settings.CircuitMaxBreakDuration < _breakDuration ? _breakDuration : settings.CircuitMaxBreakDuration;
        _consecutiveToEject = Math.Max(1, settings.ConsecutiveFailuresToEject);
        _breaker = new FailureRatioBreaker(time, settings.CircuitFailureRatio, Math.Max(2, settings.CircuitMinimumThroughput),
            settings.CircuitSamplingDuration, _breakDuration, _maxBreak)
        {
            Opened = _ => metrics.CircuitOpened(),
        };
    }

    /// <summary>Tries in flight at this endpoint now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Out of balancing now: ejected, or its circuit open, until the break ends.</summary>
    public bool IsOpen
    {
        get
        {
            var now = _time.GetTimestamp();
            return now < Volatile.Read(ref _ejectedUntil) || (_breaker.OpenUntil is var until && until != 0 && now < until);
        }
    }

    /// <summary>Ejected or its circuit open, and no success since (out, or back on trial).</summary>
    public bool IsEjected => Volatile.Read(ref _ejectedUntil) != 0 || _breaker.OpenUntil != 0;

    private void Observe(TryOutcome outcome)
    {
        if (!outcome.IsEndpointFailure())
        {
            if (outcome == TryOutcome.Relayed && Volatile.Read(ref _consecutiveFailures) != 0)
            {
                Volatile.Write(ref _consecutiveFailures, 0);
                Volatile.Write(ref _ejectionsInARow, 0);
                Volatile.Write(ref _ejectedUntil, 0);
            }
            return;
        }
        if (Interlocked.Increment(ref _consecutiveFailures) < _consecutiveToEject)
        {
            return;
        }
        var now = _time.GetTimestamp();
        if (now < Volatile.Read(ref _ejectedUntil))
        {
            return; // already out: tries that were in flight when it was ejected end here
        }
        var ejections = Interlocked.Increment(ref _ejectionsInARow);
        var breakFor = FailureRatioBreaker.Grown(_breakDuration, _maxBreak, ejections);
        Volatile.Write(ref _ejectedUntil, now + (long)(breakFor.TotalSeconds * _time.TimestampFrequency));
        _metrics.Ejected();
    }

    /// <summary>
    /// Admits one try through the breaker: false when the circuit is open (or its one trial is under way), and then
    /// nothing may be sent. An admitted try must end in exactly one <see cref="Exit(bool, TryOutcome)"/> or
    /// <see cref="Exit(bool, Exception)"/>. (Enter and exit rather than a wrapper around the try: a wrapper is one
    /// more async layer, and one more state machine box, per request.)
    /// </summary>
    public bool TryEnter(out bool trial)
    {
        if (!_breaker.TryEnter(out trial))
        {
            return false;
        }
        Interlocked.Increment(ref _inFlight);
        return true;
    }

    /// <summary>The admitted try ended with <paramref name="outcome"/>.</summary>
    public void Exit(bool trial, TryOutcome outcome)
    {
        var health = outcome == TryOutcome.AppSide ? TryHealth.Neutral : outcome.IsEndpointFailure() ? TryHealth.Failure : TryHealth.Success;
        Observe(outcome);
        Interlocked.Decrement(ref _inFlight);
        _breaker.Report(trial, health);
    }

    /// <summary>
    /// The admitted try threw: a caller that went away (<see cref="OperationCanceledException"/>) says nothing about
    /// the endpoint; any other exception counts against it.
    /// </summary>
    public void Exit(bool trial, Exception failure)
    {
        Interlocked.Decrement(ref _inFlight);
        _breaker.Report(trial, failure is OperationCanceledException ? TryHealth.Neutral : TryHealth.Failure);
    }
}
