using System.Runtime.CompilerServices;
using Polly;
using Polly.CircuitBreaker;

namespace MeshGuard.Proxy.Outbound.Resilience;

/// <summary>
/// One endpoint's health as its callers see it, from the outcomes of real tries, and its tries in flight for
/// least-requests balancing. Two signals take an endpoint out of balancing:
/// <list type="bullet">
/// <item>passive health (Envoy's outlier detection): consecutive failed tries eject it at once, for a break
/// that grows with each ejection in a row; when the break ends it takes requests again, and one more failure
/// ejects it again, while a success clears its record;</item>
/// <item>a Polly circuit breaker: a failure ratio over a sampling window opens the circuit; when its break
/// ends one trial call decides whether it closes or stays open for longer.</item>
/// </list>
/// A dead endpoint is caught by the first (a ratio needs as many failures as the window holds successes);
/// an endpoint that fails some of its requests, by the second. Built once per endpoint, never per request.
/// </summary>
internal sealed class EndpointCircuit
{
    private readonly ResiliencePipeline<TryOutcome> _pipeline;
    private readonly TimeProvider _time;
    private readonly OutboundMetrics _metrics;
    private readonly int _consecutiveToEject;
    private readonly TimeSpan _breakDuration;
    private readonly TimeSpan _maxBreak;
    private long _closedAfter;
    private long _ejectedUntil;
    private int _consecutiveFailures;
    private int _ejectionsInARow;
    private int _inFlight;

    // Polly validates its options with DataAnnotations, a path the AOT analysis flags (Enum.GetValues) for a
    // breaker over a generic result. The functional suite runs every circuit test against the NativeAOT
    // sidecar too, which shows the path works there.
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("AOT", "IL3050", Justification = "see above; covered by the AOT functional run")]
    public EndpointCircuit(OutboundResilience settings, TimeProvider time, OutboundMetrics metrics)
    {
        _time = time;
        _metrics = metrics;
        var breakDuration = settings.CircuitBreakDuration;
        var maxBreak = settings.CircuitMaxBreakDuration < breakDuration ? breakDuration : settings.CircuitMaxBreakDuration;
        _breakDuration = breakDuration;
        _maxBreak = maxBreak;
        _consecutiveToEject = Math.Max(1, settings.ConsecutiveFailuresToEject);
        _pipeline = new ResiliencePipelineBuilder<TryOutcome> { TimeProvider = time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<TryOutcome>
            {
                FailureRatio = settings.CircuitFailureRatio,
                MinimumThroughput = Math.Max(2, settings.CircuitMinimumThroughput),
                SamplingDuration = settings.CircuitSamplingDuration,
                BreakDuration = breakDuration,
                BreakDurationGenerator = args =>
                {
                    var grown = breakDuration * (1 + args.HalfOpenAttempts);
                    return ValueTask.FromResult(grown < maxBreak ? grown : maxBreak);
                },
                // A caller that went away says nothing about the endpoint.
                ShouldHandle = static args => ValueTask.FromResult(
                    args.Outcome.Exception is { } e ? e is not OperationCanceledException : args.Outcome.Result.IsEndpointFailure()),
                OnOpened = args =>
                {
                    Volatile.Write(ref _closedAfter, _time.GetTimestamp() + (long)(args.BreakDuration.TotalSeconds * _time.TimestampFrequency));
                    _metrics.CircuitOpened();
                    return ValueTask.CompletedTask;
                },
                OnClosed = _ =>
                {
                    Volatile.Write(ref _closedAfter, 0);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    /// <summary>Tries in flight at this endpoint now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Out of balancing now: ejected, or its circuit open, until the break ends.</summary>
    public bool IsOpen
    {
        get
        {
            var now = _time.GetTimestamp();
            return now < Volatile.Read(ref _ejectedUntil) || (Volatile.Read(ref _closedAfter) is var until && until != 0 && now < until);
        }
    }

    /// <summary>Ejected or its circuit open, and no success since (out, or back on trial).</summary>
    public bool IsEjected => Volatile.Read(ref _ejectedUntil) != 0 || Volatile.Read(ref _closedAfter) != 0;

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
        var breakFor = _breakDuration * ejections;
        breakFor = breakFor < _maxBreak ? breakFor : _maxBreak;
        Volatile.Write(ref _ejectedUntil, now + (long)(breakFor.TotalSeconds * _time.TimestampFrequency));
        _metrics.Ejected();
    }

    /// <summary>
    /// Runs one try through the breaker. A circuit that is open (or whose one trial is already under way)
    /// refuses at once with <see cref="BrokenCircuitException"/> in the outcome; nothing was sent then.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Outcome<TryOutcome>> RunAsync<TState>(Func<TState, ValueTask<TryOutcome>> tryOnce, TState state, CancellationToken cancellation)
    {
        var context = ResilienceContextPool.Shared.Get(cancellation);
        Interlocked.Increment(ref _inFlight);
        try
        {
            var outcome = await _pipeline.ExecuteOutcomeAsync(
                [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] static async ValueTask<Outcome<TryOutcome>> (ResilienceContext _, (Func<TState, ValueTask<TryOutcome>> TryOnce, TState State) s) =>
                    Outcome.FromResult(await s.TryOnce(s.State)),
                context,
                (TryOnce: tryOnce, State: state));
            if (outcome.Exception is null)
            {
                Observe(outcome.Result);
            }
            return outcome;
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            ResilienceContextPool.Shared.Return(context);
        }
    }
}
