namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// What this side may still send on one stream (the peer's flow-control window for it), and the sender waiting for
/// more: the same on a client's and a server's streams. Guarded by the connection's lock.
/// </summary>
internal abstract class Http2StreamSendWindow
{
    internal int SendWindow { get; set; }

    internal TaskCompletionSource? WindowWaiter { get; set; }

    /// <summary>Under the lock: a sender waiting for window tries again.</summary>
    internal void WakeSender()
    {
        WindowWaiter?.TrySetResult();
        WindowWaiter = null;
    }

    /// <summary>
    /// Under the lock: the peer changed SETTINGS_INITIAL_WINDOW_SIZE from <paramref name="previous"/> to
    /// <paramref name="value"/>; every open stream's window moves by the difference (RFC 9113 6.9.2), and may go below zero.
    /// </summary>
    internal static int ApplyInitialWindow<TStream>(Dictionary<int, TStream>.ValueCollection streams, int previous, uint value)
        where TStream : Http2StreamSendWindow
    {
        if (value > Http2Frame.MaxWindowSize)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "SETTINGS_INITIAL_WINDOW_SIZE is above 2^31-1");
        }
        var delta = (int)value - previous;
        foreach (var stream in streams)
        {
            if ((long)stream.SendWindow + delta > Http2Frame.MaxWindowSize)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "a stream's window grew past 2^31-1");
            }
            stream.SendWindow += delta;
            if (delta > 0)
            {
                stream.WakeSender();
            }
        }
        return (int)value;
    }
}
