using MeshGuard.Proxy.Outbound.Resilience;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.Proxy.Tests.Outbound;

public sealed class RetryBudgetTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-24T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    private static int Drain(RetryBudget budget)
    {
        var spent = 0;
        while (budget.TryWithdraw())
        {
            spent++;
        }
        return spent;
    }

    [Fact]
    public void ABudgetStartsWithTenSecondsOfTheFloorAndThenRefusesAndCountsTheRefusal()
    {
        var budget = new RetryBudget(0.2, 10, _time);
        Assert.Equal(100, Drain(budget));
        Assert.False(budget.TryWithdraw());
        Assert.True(budget.Exhausted >= 2);
    }

    [Fact]
    public void TimeAddsTheFloorRateAndNeverMoreThanTheCapacity()
    {
        var budget = new RetryBudget(0.2, 10, _time);
        Drain(budget);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(10, Drain(budget));
        _time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(100, Drain(budget));
    }

    [Fact]
    public void EachRequestEarnsItsShareOfARetry()
    {
        var budget = new RetryBudget(0.2, 0, _time);
        Drain(budget);
        for (var i = 0; i < 50; i++)
        {
            budget.Deposit();
        }
        Assert.Equal(10, Drain(budget));
    }
}
