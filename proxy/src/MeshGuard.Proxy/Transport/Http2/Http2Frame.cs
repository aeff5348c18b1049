using System.Buffers.Binary;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>HTTP/2 frame types (RFC 9113 6).</summary>
internal enum Http2FrameType : byte
{
    Data = 0x0,
    Headers = 0x1,
    Priority = 0x2,
    RstStream = 0x3,
    Settings = 0x4,
    PushPromise = 0x5,
    Ping = 0x6,
    GoAway = 0x7,
    WindowUpdate = 0x8,
    Continuation = 0x9,
}

/// <summary>HTTP/2 error codes (RFC 9113 7).</summary>
internal enum Http2ErrorCode : uint
{
    NoError = 0x0,
    ProtocolError = 0x1,
    InternalError = 0x2,
    FlowControlError = 0x3,
    SettingsTimeout = 0x4,
    StreamClosed = 0x5,
    FrameSizeError = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    CompressionError = 0x9,
    ConnectError = 0xa,
    EnhanceYourCalm = 0xb,
    InadequateSecurity = 0xc,
    Http11Required = 0xd,
}

/// <summary>The 9-octet frame header, the flags and settings this client uses, and the connection preface.</summary>
internal static class Http2Frame
{
    public const int HeaderLength = 9;

    /// <summary>The frame size every peer must accept, and the largest this client takes (it never raises SETTINGS_MAX_FRAME_SIZE).</summary>
    public const int DefaultMaxFrameSize = 16384;

    public const int DefaultWindowSize = 65535;

    public const int MaxWindowSize = int.MaxValue;

    public const byte EndStream = 0x1;
    public const byte Ack = 0x1;
    public const byte EndHeaders = 0x4;
    public const byte Padded = 0x8;
    public const byte PriorityFlag = 0x20;

    public const ushort SettingHeaderTableSize = 0x1;
    public const ushort SettingEnablePush = 0x2;
    public const ushort SettingMaxConcurrentStreams = 0x3;
    public const ushort SettingInitialWindowSize = 0x4;
    public const ushort SettingMaxFrameSize = 0x5;
    public const ushort SettingMaxHeaderListSize = 0x6;

    /// <summary>RFC 8441: the server takes extended CONNECT (WebSockets between sidecars).</summary>
    public const ushort SettingEnableConnectProtocol = 0x8;

    public static ReadOnlySpan<byte> ClientPreface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    /// <summary>One setting of a SETTINGS payload (6 octets).</summary>
    public static void WriteSetting(Span<byte> destination, ushort id, int value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, id);
        BinaryPrimitives.WriteInt32BigEndian(destination[2..], value);
    }

    /// <summary>A GOAWAY payload: the last stream this side processes (or may process) and why the connection ends.</summary>
    public static byte[] GoAwayPayload(int lastStreamId, Http2ErrorCode code)
    {
        var payload = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(payload, lastStreamId & int.MaxValue);
        BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(4), (uint)code);
        return payload;
    }

    public static void WriteHeader(Span<byte> destination, int length, Http2FrameType type, byte flags, int streamId)
    {
        destination[0] = (byte)(length >> 16);
        destination[1] = (byte)(length >> 8);
        destination[2] = (byte)length;
        destination[3] = (byte)type;
        destination[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(destination[5..], streamId & int.MaxValue);
    }

    /// <summary>Reads a frame header: its payload length, type, flags and stream (the reserved bit dropped).</summary>
    public static (int Length, Http2FrameType Type, byte Flags, int StreamId) ReadHeader(ReadOnlySpan<byte> source) =>
        ((source[0] << 16) | (source[1] << 8) | source[2], (Http2FrameType)source[3], source[4], BinaryPrimitives.ReadInt32BigEndian(source[5..]) & int.MaxValue);
}

/// <summary>
/// A stream ended without a whole answer. <see cref="NotProcessed"/> says the peer guarantees it did nothing with the
/// request (REFUSED_STREAM, or a GOAWAY below its id: RFC 9113 8.7), so any request may go again.
/// </summary>
internal sealed class Http2StreamException(Http2ErrorCode code, string message, bool notProcessed = false, Exception? inner = null)
    : IOException(message, inner)
{
    public Http2ErrorCode Code { get; } = code;

    public bool NotProcessed { get; } = notProcessed;
}
