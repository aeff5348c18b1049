using MeshGuard.Proxy.Limits;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshGuard.Proxy.Tests.Limits;

/// <summary>
/// One inbound connection's reset allowance: streams its peer cancels before an answer may outnumber the answered
/// ones by the allowance and no more; a call given up on after its first second, or the connection's own end, is
/// not counted; the connection is closed once.
/// </summary>
public sealed class PrematureResetBudgetTests
{
    private static readonly TimeSpan AtOnce = TimeSpan.FromMilliseconds(1);

    private readonly PrematureResetLimit _limit = new(NullLogger<PrematureResetLimit>.Instance);
    private readonly DefaultConnectionContext _connection = new("test");

    [Fact]
    public void APeerThatCancelsOneStreamPastTheAllowanceIsCutOnceAndCounted()
    {
        var budget = _limit.Open(_connection, "spiffe://mesh.local/ns/shop/sa/frontend");
        for (var i = 0; i < PrematureResetLimit.Allowance; i++)
        {
            budget.StreamEnded(cancelledBeforeAnswer: true, AtOnce);
        }
        Assert.False(budget.IsCut);
        Assert.Equal(0, _limit.ConnectionsCut);

        budget.StreamEnded(cancelledBeforeAnswer: true, AtOnce);
        Assert.True(budget.IsCut);
        Assert.Equal(1, _limit.ConnectionsCut);
        Assert.Equal(PrematureResetLimit.Allowance + 1, _limit.PrematureResets);
        Assert.True(WaitClosed(_connection), "the connection was not aborted");

        // Streams still ending on the closed connection count no further cut.
        budget.StreamEnded(cancelledBeforeAnswer: true, AtOnce);
        Assert.Equal(1, _limit.ConnectionsCut);
    }

    [Fact]
    public void EachAnsweredStreamRaisesTheAllowanceByOne()
    {
        var budget = _limit.Open(_connection, "peer");
        for (var i = 0; i < 500; i++)
        {
            budget.StreamEnded(cancelledBeforeAnswer: false, AtOnce);
            budget.StreamEnded(cancelledBeforeAnswer: true, AtOnce);
        }
        for (var i = 0; i < PrematureResetLimit.Allowance; i++)
        {
            budget.StreamEnded(cancelledBeforeAnswer: true, AtOnce);
        }
        Assert.False(budget.IsCut);
        budget.StreamEnded(cancelledBeforeAnswer: true, AtOnce);
        Assert.True(budget.IsCut);
    }

    [Fact]
    public void CallsGivenUpOnAfterTheirFirstSecondAreNotCounted()
    {
        var budget = _limit.Open(_connection, "peer");
        for (var i = 0; i < 10 * PrematureResetLimit.Allowance; i++)
        {
            budget.StreamEnded(cancelledBeforeAnswer: true, PrematureResetLimit.Lifetime);
        }
        Assert.False(budget.IsCut);
        Assert.Equal(0, _limit.PrematureResets);
    }

    [Fact]
    public void StreamsEndingWithTheirClosedConnectionAreNotCounted()
    {
        var budget = _limit.Open(_connection, "peer");
        _connection.Abort();
        Assert.True(WaitClosed(_connection));
        for (var i = 0; i < 10 * PrematureResetLimit.Allowance; i++)
        {
            budget.StreamEnded(cancelledBeforeAnswer: true, AtOnce);
        }
        Assert.False(budget.IsCut);
        Assert.Equal(0, _limit.ConnectionsCut);
    }

    [Fact]
    public void EachConnectionHasItsOwnAllowance()
    {
        var flooder = _limit.Open(_connection, "flooder");
        var other = _limit.Open(new DefaultConnectionContext("other"), "other");
        for (var i = 0; i <= PrematureResetLimit.Allowance; i++)
        {
            flooder.StreamEnded(cancelledBeforeAnswer: true, AtOnce);
        }
        other.StreamEnded(cancelledBeforeAnswer: true, AtOnce);
        Assert.True(flooder.IsCut);
        Assert.False(other.IsCut);
    }

    // DefaultConnectionContext signals ConnectionClosed from the thread pool after Abort.
    private static bool WaitClosed(ConnectionContext connection) =>
        SpinWait.SpinUntil(() => connection.ConnectionClosed.IsCancellationRequested, TimeSpan.FromSeconds(5));
}
