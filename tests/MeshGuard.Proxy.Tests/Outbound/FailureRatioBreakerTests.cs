using MeshGuard.Proxy.Outbound.Resilience;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.Proxy.Tests.Outbound;

/// <summary>
/// The per-endpoint circuit breaker on a fake clock: a failure ratio over the window opens it once the minimum of
/// tries is seen; after the break exactly one trial goes; its outcome closes the circuit, or opens it for longer
/// (capped); old tries leave the window; tries that say nothing count neither way.
/// </summary>
public sealed class FailureRatioBreakerTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly List<TimeSpan> _opened = [];

    private FailureRatioBreaker Breaker(double ratio = 0.5, int minimum = 4) =>
        new(_time, ratio, minimum, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(12))
        {
            Opened = _opened.Add,
        };

    private static void Run(FailureRatioBreaker breaker, TryHealth health, int times = 1)
    {
        for (var i = 0; i < times; i++)
        {
            Assert.True(breaker.TryEnter(out var trial));
            Assert.False(trial);
            breaker.Report(trial, health);
        }
    }

    [Fact]
    public void FailuresReachingTheRatioOpenTheCircuitOnlyOnceTheMinimumOfTriesIsSeen()
    {
        var breaker = Breaker(ratio: 0.5, minimum: 4);
        Run(breaker, TryHealth.Failure, 3);
        Assert.Empty(_opened);
        Assert.Equal(0, breaker.OpenUntil);
        Run(breaker, TryHealth.Success);
        // 3 of 4 failed, but the ratio is judged when a failure comes in.
        Run(breaker, TryHealth.Failure);
        Assert.Equal([TimeSpan.FromSeconds(5)], _opened);
        Assert.False(breaker.TryEnter(out _));
        Assert.NotEqual(0, breaker.OpenUntil);
    }

    [Fact]
    public void BelowTheRatioTheCircuitStaysClosed()
    {
        var breaker = Breaker(ratio: 0.5, minimum: 4);
        for (var i = 0; i < 20; i++)
        {
            Run(breaker, TryHealth.Success, 2);
            Run(breaker, TryHealth.Failure);
        }
        Assert.Empty(_opened);
    }

    [Fact]
    public void AfterTheBreakOneTrialGoesAndItsSuccessClosesTheCircuitWithAnEmptyWindow()
    {
        var breaker = Breaker(minimum: 2);
        Run(breaker, TryHealth.Failure, 2);
        _time.Advance(TimeSpan.FromSeconds(4.9));
        Assert.False(breaker.TryEnter(out _));
        _time.Advance(TimeSpan.FromSeconds(0.2));
        Assert.True(breaker.TryEnter(out var trial));
        Assert.True(trial);
        // While the trial is out, every other try is refused.
        Assert.False(breaker.TryEnter(out _));
        breaker.Report(trial, TryHealth.Success);
        Assert.Equal(0, breaker.OpenUntil);
        // The window was cleared: one failure is below the minimum again.
        Run(breaker, TryHealth.Failure);
        Assert.Single(_opened);
    }

    [Fact]
    public void EachFailedTrialInARowOpensTheCircuitForLongerUpToTheMaximum()
    {
        var breaker = Breaker(minimum: 2);
        Run(breaker, TryHealth.Failure, 2);
        for (var i = 0; i < 3; i++)
        {
            _time.Advance(_opened[^1]);
            Assert.True(breaker.TryEnter(out var trial));
            breaker.Report(trial, TryHealth.Failure);
        }
        Assert.Equal([TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(12), TimeSpan.FromSeconds(12)], _opened);
    }

    [Fact]
    public void ATrialThatSaysNothingHandsTheTrialToTheNextTry()
    {
        var breaker = Breaker(minimum: 2);
        Run(breaker, TryHealth.Failure, 2);
        _time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(breaker.TryEnter(out var trial));
        breaker.Report(trial, TryHealth.Neutral);
        Assert.NotEqual(0, breaker.OpenUntil);
        Assert.True(breaker.TryEnter(out var next));
        Assert.True(next);
        breaker.Report(next, TryHealth.Success);
        Assert.Equal(0, breaker.OpenUntil);
    }

    [Fact]
    public void TriesOlderThanTheWindowNoLongerCountAndNeutralTriesNeverDo()
    {
        var breaker = Breaker(ratio: 0.5, minimum: 4);
        Run(breaker, TryHealth.Failure, 3);
        _time.Advance(TimeSpan.FromSeconds(11));
        Run(breaker, TryHealth.Neutral, 10);
        Run(breaker, TryHealth.Failure);
        // Only one failure is in the window now: below the minimum.
        Assert.Empty(_opened);
        Run(breaker, TryHealth.Failure, 3);
        Assert.Single(_opened);
    }

    [Fact]
    public void TriesThatBeganBeforeTheCircuitOpenedDoNotReopenOrCloseIt()
    {
        var breaker = Breaker(minimum: 2);
        Assert.True(breaker.TryEnter(out var late));
        Run(breaker, TryHealth.Failure, 2);
        breaker.Report(late, TryHealth.Success);
        breaker.Report(late, TryHealth.Failure);
        Assert.Single(_opened);
        Assert.NotEqual(0, breaker.OpenUntil);
        Assert.False(breaker.TryEnter(out _));
    }
}
