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
    /// Under the lock: queues the next DATA frame of <paramref name="data"/> on this stream (<paramref name="streamId"/>),
    /// as large as the frame size and both windows allow, and takes what it carries off both windows and off
    /// <paramref name="data"/>. False, with nothing queued, when no window is left for data that is not empty (an empty
    /// last frame needs none). <paramref name="last"/>: the frame carried END_STREAM. The one framing step of both sides.
    /// </summary>
    internal bool TryFrameData(Http2FrameQueue frames, int streamId, ref ReadOnlyMemory<byte> data, bool endStream, int maxFrameSize, ref long connectionWindow, out bool last)
    {
        // A window can be below zero after the peer shrank SETTINGS_INITIAL_WINDOW_SIZE (RFC 9113 6.9.2).
        var take = (int)Math.Max(0, Math.Min(Math.Min(data.Length, maxFrameSize), Math.Min(SendWindow, connectionWindow)));
        last = false;
        if (take == 0 && !data.IsEmpty)
        {
            return false;
        }
        last = endStream && take == data.Length;
        frames.Frame(Http2FrameType.Data, last ? Http2Frame.EndStream : (byte)0, streamId, data.Span[..take]);
        SendWindow -= take;
        connectionWindow -= take;
        data = data[take..];
        return true;
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
