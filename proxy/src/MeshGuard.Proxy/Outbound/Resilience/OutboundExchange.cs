using Microsoft.Extensions.ObjectPool;

namespace MeshGuard.Proxy.Outbound.Resilience;

/// <summary>
/// One app request's passage through the outbound side, across its tries: whether it may be tried again,
/// the per-try timer, and what the last try saw. Pooled, and set as a request feature so the transformer
/// (shared by all requests) can reach it.
/// </summary>
internal sealed class OutboundExchange : IDisposable
{
    private CancellationTokenSource _tryTimer = new();
    private RetryBudget? _budget;
    private bool _mayHoldBack;

    /// <summary>An idempotent request without a body: it can be sent again after a failed try.</summary>
    public bool Retryable { get; private set; }

    /// <summary>Tries begun so far.</summary>
    public int Tries { get; private set; }

    /// <summary>The budget granted one more try, and a retryable answer (502, 503) may be held back for it.</summary>
    public bool RetryReserved { get; private set; }

    /// <summary>Response headers of the current try arrived.</summary>
    public bool Answered { get; private set; }

    /// <summary>The current try's answer was a 502 or 503 that was not relayed, so the request can go elsewhere.</summary>
    public bool AnswerHeldBack { get; private set; }

    public bool TimedOut => _tryTimer.IsCancellationRequested;

    /// <summary>The current try has a timeout of its own (a retryable request's per-try timeout).</summary>
    public bool HasTryTimeout { get; private set; }

    /// <summary>What broke the current try, for the log and the sidecar's own answer; null when nothing did.</summary>
    public Exception? Failure { get; private set; }

    public CancellationToken TryToken => _tryTimer.Token;

    /// <summary>The request fields the current try sends on, taken in one pass over the server's collection (reused).</summary>
    public List<KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues>> Fields { get; } = [];

    /// <summary>The request id and trace context the sidecar made for this request (none when it brought its own).</summary>
    public MeshGuard.Proxy.FlowLog.MadeIds Ids { get; private set; }

    public void Start(bool retryable, RetryBudget budget, MeshGuard.Proxy.FlowLog.MadeIds ids)
    {
        Ids = ids;
        Retryable = retryable;
        _budget = budget;
        Tries = 0;
        RetryReserved = false;
    }

    /// <summary>
    /// A try begins. A retryable request's try may wait <paramref name="timeout"/> for its answer, and if
    /// <paramref name="triesLeft"/>, a 502 or 503 answer may be held back for another try.
    /// </summary>
    public void BeginTry(TimeSpan timeout, bool triesLeft)
    {
        Tries++;
        Answered = false;
        AnswerHeldBack = false;
        Failure = null;
        _mayHoldBack = Retryable && triesLeft;
        HasTryTimeout = Retryable && timeout > TimeSpan.Zero;
        if (HasTryTimeout)
        {
            _tryTimer.CancelAfter(timeout);
        }
    }

    /// <summary>Takes a retry from the budget for an answer that is worth another try; false if the request may not have one.</summary>
    public bool TryReserveRetry()
    {
        if (!_mayHoldBack || _budget is null || !_budget.TryWithdraw())
        {
            return false;
        }
        RetryReserved = true;
        return true;
    }

    /// <summary>A try without a timeout of its own still waits at most <paramref name="limit"/> for its answer's head.</summary>
    public void LimitAnswerWait(TimeSpan limit) => _tryTimer.CancelAfter(limit);

    /// <summary>The current try broke: <paramref name="failure"/> says how.</summary>
    public void Fail(Exception failure) => Failure ??= failure;

    /// <summary>The reserved retry is being used.</summary>
    public void UseRetry() => RetryReserved = false;

    /// <summary>Response headers arrived: the per-try timer stops (the body may take as long as it takes).</summary>
    public void MarkAnswered(bool heldBack)
    {
        Answered = true;
        AnswerHeldBack = heldBack;
        _tryTimer.CancelAfter(Timeout.InfiniteTimeSpan);
    }

    public void EndTry()
    {
        if (!_tryTimer.TryReset())
        {
            _tryTimer.Dispose();
            _tryTimer = new CancellationTokenSource();
        }
    }

    public void Dispose() => _tryTimer.Dispose();

    public sealed class Policy : PooledObjectPolicy<OutboundExchange>
    {
        public override OutboundExchange Create() => new();

        public override bool Return(OutboundExchange obj)
        {
            obj.EndTry();
            obj.Fields.Clear();
            return true;
        }
    }
}
