namespace MeshGuard.Proxy.Outbound.Resilience;

/// <summary>
/// Linkerd's retry budget as a token bucket: every original request deposits <c>ratio</c> of a retry,
/// time adds <c>minPerSecond</c> retries a second, and a retry spends one. The bucket holds ten seconds of
/// the floor rate, or 100 retries if that is more, so a long quiet spell cannot bank a retry storm, and
/// once the bank is spent the retries add at most the ratio (plus the floor) to the load. Deposits are lock-free (every
/// request makes one); spending, which only failures do, takes a lock.
/// </summary>
internal sealed class RetryBudget
{
    private const long Scale = 1000;

    private readonly long _deposit;
    private readonly long _perSecond;
    private readonly long _capacity;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private long _tokens;
    private long _refilledAt;
    private long _exhausted;

    public RetryBudget(double ratio, int minPerSecond, TimeProvider time)
    {
        _deposit = (long)Math.Round(Math.Max(0, ratio) * Scale);
        _perSecond = Math.Max(0, minPerSecond) * Scale;
        _capacity = Math.Max(100 * Scale, _perSecond * 10);
        _time = time;
        _tokens = _capacity;
        _refilledAt = time.GetTimestamp();
    }

    /// <summary>Retries that could be spent right now (whole ones).</summary>
    public long Available
    {
        get
        {
            lock (_gate)
            {
                Refill();
                return Interlocked.Read(ref _tokens) / Scale;
            }
        }
    }

    /// <summary>Retries refused because the budget was spent.</summary>
    public long Exhausted => Interlocked.Read(ref _exhausted);

    public void Deposit()
    {
        if (_deposit > 0 && Interlocked.Add(ref _tokens, _deposit) > _capacity)
        {
            Interlocked.Exchange(ref _tokens, _capacity);
        }
    }

    public bool TryWithdraw()
    {
        lock (_gate)
        {
            Refill();
            if (_tokens < Scale)
            {
                _exhausted++;
                return false;
            }
            Interlocked.Add(ref _tokens, -Scale);
            return true;
        }
    }

    private void Refill()
    {
        var now = _time.GetTimestamp();
        var earned = (long)(_time.GetElapsedTime(_refilledAt, now).TotalSeconds * _perSecond);
        if (earned <= 0)
        {
            return;
        }
        _refilledAt = now;
        var tokens = Interlocked.Add(ref _tokens, earned);
        if (tokens > _capacity)
        {
            Interlocked.Exchange(ref _tokens, _capacity);
        }
    }
}
