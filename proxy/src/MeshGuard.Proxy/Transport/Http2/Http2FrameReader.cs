using System.Buffers;
using System.Buffers.Binary;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// Reading frames off a connection's input, the same for the client and the server side: a whole frame or none,
/// padding taken off, and the fixed-size payloads (RST_STREAM, WINDOW_UPDATE, PING, SETTINGS) checked for their size
/// before they are read. Every breach is an <see cref="Http2ConnectionException"/> with the code RFC 9113 names.
/// </summary>
internal static class Http2FrameReader
{
    /// <summary>Takes the next whole frame off <paramref name="buffer"/>; false while it has not all arrived.</summary>
    public static bool TryTake(ref ReadOnlySequence<byte> buffer, out (int Length, Http2FrameType Type, byte Flags, int StreamId) header, out ReadOnlySequence<byte> payload)
    {
        header = default;
        payload = default;
        if (buffer.Length < Http2Frame.HeaderLength)
        {
            return false;
        }
        Span<byte> head = stackalloc byte[Http2Frame.HeaderLength];
        buffer.Slice(0, Http2Frame.HeaderLength).CopyTo(head);
        header = Http2Frame.ReadHeader(head);
        if (header.Length > Http2Frame.DefaultMaxFrameSize)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, $"a frame of {header.Length} octets exceeds the {Http2Frame.DefaultMaxFrameSize} allowed");
        }
        if (buffer.Length < Http2Frame.HeaderLength + header.Length)
        {
            return false;
        }
        payload = buffer.Slice(Http2Frame.HeaderLength, header.Length);
        buffer = buffer.Slice(Http2Frame.HeaderLength + header.Length);
        return true;
    }

    /// <summary>A DATA or HEADERS payload without its padding (and a HEADERS frame's priority octets).</summary>
    public static ReadOnlySequence<byte> Unpad(byte flags, ReadOnlySequence<byte> payload, int priorityOctets)
    {
        var padding = 0;
        if ((flags & Http2Frame.Padded) != 0)
        {
            if (payload.Length < 1)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "a padded frame has no pad length");
            }
            padding = payload.FirstSpan[0];
            payload = payload.Slice(1);
        }
        if (payload.Length < priorityOctets + padding)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "a frame's padding is longer than its payload");
        }
        return payload.Slice(priorityOctets, payload.Length - priorityOctets - padding);
    }

    /// <summary>A RST_STREAM's error code.</summary>
    public static Http2ErrorCode ResetCode(ReadOnlySequence<byte> payload) => (Http2ErrorCode)ReadFour(payload, "RST_STREAM");

    /// <summary>A WINDOW_UPDATE's increment (the reserved bit dropped; zero is the caller's to judge).</summary>
    public static int WindowIncrement(ReadOnlySequence<byte> payload) => (int)(ReadFour(payload, "WINDOW_UPDATE") & int.MaxValue);

    /// <summary>A PING, checked; unless it is an acknowledgement, its answer is queued (true: a flush is due).</summary>
    public static bool AnswerPing(Http2FrameQueue frames, byte flags, int streamId, ReadOnlySequence<byte> payload)
    {
        if (streamId != 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "PING came on a stream");
        }
        if (payload.Length != 8)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "PING is not 8 octets");
        }
        if ((flags & Http2Frame.Ack) != 0)
        {
            return false;
        }
        Span<byte> opaque = stackalloc byte[8];
        payload.CopyTo(opaque);
        frames.Frame(Http2FrameType.Ping, Http2Frame.Ack, 0, opaque);
        return true;
    }

    /// <summary>SETTINGS_MAX_FRAME_SIZE must lie in 2^14..2^24-1; frames this side writes stay at the default either way.</summary>
    public static void CheckMaxFrameSize(uint value)
    {
        if (value is < Http2Frame.DefaultMaxFrameSize or > 16777215)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "SETTINGS_MAX_FRAME_SIZE is out of range");
        }
    }

    /// <summary>
    /// A SETTINGS frame's checks; false for an acknowledgement (nothing to apply). Otherwise each setting goes to
    /// <paramref name="apply"/> in order.
    /// </summary>
    public static bool ReadSettings<TState>(byte flags, int streamId, ReadOnlySequence<byte> payload, TState state, Action<TState, ushort, uint> apply)
    {
        if (streamId != 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "SETTINGS came on a stream");
        }
        if ((flags & Http2Frame.Ack) != 0)
        {
            if (payload.Length != 0)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "a SETTINGS acknowledgement has a payload");
            }
            return false;
        }
        if (payload.Length % 6 != 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "SETTINGS is not a multiple of 6 octets");
        }
        Span<byte> setting = stackalloc byte[6];
        for (var rest = payload; rest.Length > 0; rest = rest.Slice(6))
        {
            rest.Slice(0, 6).CopyTo(setting);
            apply(state, BinaryPrimitives.ReadUInt16BigEndian(setting), BinaryPrimitives.ReadUInt32BigEndian(setting[2..]));
        }
        return true;
    }

    private static uint ReadFour(ReadOnlySequence<byte> payload, string frame)
    {
        if (payload.Length != 4)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, frame + " is not 4 octets");
        }
        Span<byte> raw = stackalloc byte[4];
        payload.CopyTo(raw);
        return BinaryPrimitives.ReadUInt32BigEndian(raw);
    }
}
