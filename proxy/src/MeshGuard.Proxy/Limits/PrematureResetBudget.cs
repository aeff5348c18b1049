using System.Diagnostics;
using Microsoft.AspNetCore.Connections;

namespace MeshGuard.Proxy.Limits;

/// <summary>
/// One inbound connection's account of its streams (a connection feature): answered, or cancelled by the peer
/// before any answer within their first second. When the cancelled outnumber the answered by more than
/// <see cref="PrematureResetLimit.Allowance"/>, the connection is closed once, whatever its streams still do.
/// </summary>
internal sealed class PrematureResetBudget(PrematureResetLimit limit, ConnectionContext connection, string peer)
{
    private int _answered;
    private int _premature;
    private int _cut;

    /// <summary>True once the connection was closed for its resets.</summary>
    public bool IsCut => Volatile.Read(ref _cut) != 0;

    /// <summary>
    /// As a stream's handler ends (or finds its stream cancelled before it began): a stream whose answer began is
    /// answered; one its peer cancelled first, within its first second, is premature.
    /// </summary>
    public void StreamEnded(HttpContext context, long startedTimestamp)
    {
        // The clock is read only for a cancelled stream: an answered one, the usual case, needs no lifetime.
        var cancelledBeforeAnswer = context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted;
        StreamEnded(cancelledBeforeAnswer, cancelledBeforeAnswer ? Stopwatch.GetElapsedTime(startedTimestamp) : TimeSpan.Zero);
    }

    /// <summary>The account itself, apart from how a stream is read.</summary>
    public void StreamEnded(bool cancelledBeforeAnswer, TimeSpan lifetime)
    {
        if (!cancelledBeforeAnswer)
        {
            Interlocked.Increment(ref _answered);
            return;
        }
        // A long call given up on is no flood; and once the connection is cut or ended, all its streams end with it.
        if (lifetime >= PrematureResetLimit.Lifetime || IsCut || connection.ConnectionClosed.IsCancellationRequested)
        {
            return;
        }
        var premature = Interlocked.Increment(ref _premature);
        limit.Counted();
        var answered = Volatile.Read(ref _answered);
        if (premature - answered > PrematureResetLimit.Allowance && Interlocked.Exchange(ref _cut, 1) == 0)
        {
            limit.Cut(connection, peer, premature, answered);
        }
    }
}
