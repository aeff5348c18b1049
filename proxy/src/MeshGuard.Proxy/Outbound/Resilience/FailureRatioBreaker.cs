namespace MeshGuard.Proxy.Outbound.Resilience;

/// <summary>What a try said about its endpoint.</summary>
internal enum TryHealth
{
    /// <summary>Nothing: the caller went away, or its own side failed.</summary>
    Neutral,
    Success,
    Failure,
}

/// <summary>
/// A circuit breaker over a failure ratio (the model of Polly's advanced breaker and of Envoy's success-rate outlier
/// detection, without a pipeline around each try): the tries of the last sampling window are counted in ten
/// buckets; when at least the minimum number of tries has been seen and failures reach the ratio, the circuit opens
/// for the break. When the break ends, one try goes through as a trial while every other is refused: a success
/// closes the circuit (and clears the window), a failure opens it again for a longer break (the break once more per
/// failed trial in a row, at most the maximum), a try that says nothing gives the trial to the next one.
/// Closed, the admission check reads one field; outcomes are counted under a lock held for a few instructions.
/// </summary>
internal sealed class FailureRatioBreaker
{
    private const int Buckets = 10;
    private const int Closed = 0;
    private const int Open = 1;
    private const int HalfOpen = 2;

    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly double _failureRatio;
    private readonly int _minimumThroughput;
    private readonly long _bucketTicks;
    private readonly TimeSpan _breakDuration;
    private readonly TimeSpan _maxBreak;
    private readonly long[] _bucketSlot = new long[Buckets];
    private readonly int[] _successes = new int[Buckets];
    private readonly int[] _failures = new int[Buckets];
    private int _state;
    private long _openUntil;
    private int _failedTrials;

    public FailureRatioBreaker(TimeProvider time, double failureRatio, int minimumThroughput, TimeSpan samplingDuration, TimeSpan breakDuration, TimeSpan maxBreak)
    {
        _time = time;
        _failureRatio = failureRatio;
        _minimumThroughput = Math.Max(1, minimumThroughput);
        _bucketTicks = Math.Max(1, (long)(samplingDuration.TotalSeconds * time.TimestampFrequency / Buckets));
        _breakDuration = breakDuration;
        _maxBreak = maxBreak < breakDuration ? breakDuration : maxBreak;
        Array.Fill(_bucketSlot, -1);
    }

    /// <summary>Called (under the breaker's lock) with the break each time the circuit opens.</summary>
    public Action<TimeSpan>? Opened { get; init; }

    /// <summary>The timestamp until which the circuit refuses tries; 0 while it is closed (it stays set through a trial).</summary>
    public long OpenUntil => Volatile.Read(ref _openUntil);

    /// <summary>
    /// Whether a try may go now. A try let through after a break is the circuit's trial (<paramref name="trial"/>):
    /// its health must be reported with <see cref="Report"/>, as every admitted try's.
    /// </summary>
    public bool TryEnter(out bool trial)
    {
        trial = false;
        if (Volatile.Read(ref _state) == Closed)
        {
            return true;
        }
        lock (_lock)
        {
            switch (_state)
            {
                case Closed:
                    return true;
                case HalfOpen:
                    return false; // the one trial is under way
                default:
                    if (_time.GetTimestamp() < _openUntil)
                    {
                        return false;
                    }
                    Volatile.Write(ref _state, HalfOpen);
                    trial = true;
                    return true;
            }
        }
    }

    /// <summary>The health an admitted try showed.</summary>
    public void Report(bool trial, TryHealth health)
    {
        if (health == TryHealth.Neutral && !trial)
        {
            return;
        }
        lock (_lock)
        {
            if (trial)
            {
                EndTrial(health);
                return;
            }
            // A try that began before the circuit opened says nothing the breaker has not acted on.
            if (_state != Closed)
            {
                return;
            }
            var now = _time.GetTimestamp();
            var slot = now / _bucketTicks;
            var bucket = (int)(slot % Buckets);
            if (_bucketSlot[bucket] != slot)
            {
                _bucketSlot[bucket] = slot;
                _successes[bucket] = 0;
                _failures[bucket] = 0;
            }
            if (health == TryHealth.Success)
            {
                _successes[bucket]++;
                return;
            }
            _failures[bucket]++;
            long tries = 0, failures = 0;
            for (var i = 0; i < Buckets; i++)
            {
                if (_bucketSlot[i] > slot - Buckets)
                {
                    tries += _successes[i] + _failures[i];
                    failures += _failures[i];
                }
            }
            if (tries >= _minimumThroughput && failures >= _failureRatio * tries)
            {
                _failedTrials = 0;
                OpenFor(_breakDuration, now);
            }
        }
    }

    private void EndTrial(TryHealth health)
    {
        switch (health)
        {
            case TryHealth.Success:
                Volatile.Write(ref _state, Closed);
                _failedTrials = 0;
                Volatile.Write(ref _openUntil, 0);
                Array.Fill(_bucketSlot, -1);
                return;
            case TryHealth.Failure:
                _failedTrials++;
                OpenFor(Grown(_breakDuration, _maxBreak, 1 + _failedTrials), _time.GetTimestamp());
                return;
            default:
                // No verdict: the next try is the trial.
                Volatile.Write(ref _state, Open);
                return;
        }
    }

    /// <summary>The break after <paramref name="times"/> failures in a row: the first break as many times over, at most <paramref name="max"/>.</summary>
    public static TimeSpan Grown(TimeSpan first, TimeSpan max, int times) => first * times is var grown && grown < max ? grown : max;

    private void OpenFor(TimeSpan breakFor, long now)
    {
        Volatile.Write(ref _state, Open);
        Volatile.Write(ref _openUntil, now + (long)(breakFor.TotalSeconds * _time.TimestampFrequency));
        Opened?.Invoke(breakFor);
    }
}
