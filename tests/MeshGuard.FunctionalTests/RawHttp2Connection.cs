using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A hand-written HTTP/2 peer over TLS 1.3 with an SVID: it sends one request whose pseudo-headers are exactly
/// the bytes a test chose (HPACK literals, no Huffman coding, nothing normalized), and reads the answer's status.
/// A block longer than the default frame size goes as HEADERS and CONTINUATION frames of at most 16,384 octets.
/// </summary>
internal static class RawHttp2Connection
{
    private const byte Data = 0x0, Headers = 0x1, RstStream = 0x3, Settings = 0x4, GoAway = 0x7, Continuation = 0x9;
    private const int MaxFrame = 16_384; // SETTINGS_MAX_FRAME_SIZE's initial value

    /// <summary>
    /// Opens <paramref name="count"/> requests (GET <paramref name="path"/>n) on one connection, waits
    /// <paramref name="hold"/> so that they reach the app, then cancels them all (RST_STREAM CANCEL) and lingers a
    /// moment: a caller that gives up on requests the app is still working on.
    /// </summary>
    public static async Task OpenAndCancelAsync(int port, X509Certificate2 svid, X509Certificate2Collection chain, string authority, string path, int count, TimeSpan hold)
    {
        await using var peer = await MeshPeerTls.ConnectAsync(port, svid, chain, SslApplicationProtocol.Http2);
        var tls = peer.Stream;
        var output = Preface(ackAhead: true);
        for (var i = 0; i < count; i++)
        {
            WriteFrame(output, Headers, 0x5, 1 + (2 * i), Block([(":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", path + i)]));
        }
        await tls.WriteAsync(output.ToArray());
        await Task.Delay(hold);
        output.SetLength(0);
        for (var i = 0; i < count; i++)
        {
            WriteFrame(output, RstStream, 0, 1 + (2 * i), [0, 0, 0, 0x8]);
        }
        try
        {
            await tls.WriteAsync(output.ToArray());
            await Task.Delay(50);
        }
        catch (IOException)
        {
            // The sidecar may already have cut the connection.
        }
    }

    /// <summary>A POST whose body comes one octet a second for <paramref name="seconds"/> seconds (HTTP/2).</summary>
    public static async Task TrickleAsync(int port, X509Certificate2 svid, X509Certificate2Collection chain, string authority, string path, int seconds,
        params (string Name, string Value)[] extra)
    {
        await using var peer = await MeshPeerTls.ConnectAsync(port, svid, chain, SslApplicationProtocol.Http2);
        var tls = peer.Stream;
        var output = Preface(ackAhead: true);
        WriteFrame(output, Headers, 0x4, 1, Block([(":method", "POST"), (":scheme", "https"), (":authority", authority), (":path", path), ("content-length", "100000"), .. extra]));
        await tls.WriteAsync(output.ToArray());
        try
        {
            for (var i = 0; i < seconds; i++)
            {
                await Task.Delay(1000);
                output.SetLength(0);
                WriteFrame(output, Data, 0, 1, [(byte)'x']);
                await tls.WriteAsync(output.ToArray());
            }
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The response's status, or null when the server reset the stream or closed the connection.</summary>
    public static async Task<int?> SendAsync(int port, X509Certificate2 svid, X509Certificate2Collection chain, IReadOnlyList<(string Name, string Value)> headers)
    {
        await using var peer = await MeshPeerTls.ConnectAsync(port, svid, chain, SslApplicationProtocol.Http2);
        var tls = peer.Stream;
        var output = Preface(ackAhead: false);
        var fields = Block(headers);
        for (var at = 0; at == 0 || at < fields.Length; at += MaxFrame)
        {
            var part = fields[at..Math.Min(fields.Length, at + MaxFrame)];
            var endHeaders = at + MaxFrame >= fields.Length ? (byte)0x4 : (byte)0;
            WriteFrame(output, at == 0 ? Headers : Continuation, at == 0 ? (byte)(0x1 /* END_STREAM */ | endHeaders) : endHeaders, 1, part);
        }
        await tls.WriteAsync(output.ToArray());
        await tls.FlushAsync();

        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var header = new byte[9];
        try
        {
            while (true)
            {
                await tls.ReadExactlyAsync(header, limit.Token);
                var length = (header[0] << 16) | (header[1] << 8) | header[2];
                var type = header[3];
                var flags = header[4];
                var stream = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & 0x7FFFFFFF;
                var payload = new byte[length];
                await tls.ReadExactlyAsync(payload, limit.Token);
                if (type == Settings && (flags & 0x1) == 0)
                {
                    var ack = new MemoryStream();
                    WriteFrame(ack, Settings, 0x1, 0, []);
                    await tls.WriteAsync(ack.ToArray(), limit.Token);
                }
                else if (type == Headers && stream == 1)
                {
                    return Status(payload, flags);
                }
                else if ((type == RstStream && stream == 1) || type == GoAway)
                {
                    return null;
                }
                _ = Data;
            }
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>The :status of a response header block, which Kestrel encodes either fully indexed or as a literal with an indexed name.</summary>
    private static int Status(byte[] payload, byte flags)
    {
        var offset = 0;
        if ((flags & 0x8) != 0)
        {
            offset = 1; // PADDED
        }
        if ((flags & 0x20) != 0)
        {
            offset += 5; // PRIORITY
        }
        var first = payload[offset];
        if ((first & 0x80) != 0)
        {
            return (first & 0x7F) switch
            {
                8 => 200,
                9 => 204,
                10 => 206,
                11 => 304,
                12 => 400,
                13 => 404,
                14 => 500,
                var index => throw new InvalidDataException($"indexed header {index} is not a status"),
            };
        }
        // Literal with an indexed name (:status is static index 8); the prefix is 6 bits (0x40) or 4 bits (0x00, 0x10).
        var nameIndex = (first & 0x40) != 0 ? first & 0x3F : first & 0x0F;
        if (nameIndex is < 8 or > 14 || (payload[offset + 1] & 0x80) != 0)
        {
            throw new InvalidDataException($"unexpected first header field 0x{first:x2} (Huffman-coded or not a status)");
        }
        var valueLength = payload[offset + 1] & 0x7F;
        return int.Parse(Encoding.ASCII.GetString(payload, offset + 2, valueLength), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The client preface and this side's settings; <paramref name="ackAhead"/>: with the acknowledgement of the
    /// server's settings sent ahead, for a peer that reads nothing the server sends.
    /// </summary>
    private static MemoryStream Preface(bool ackAhead)
    {
        var output = new MemoryStream();
        output.Write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8);
        WriteFrame(output, Settings, 0, 0, []);
        if (ackAhead)
        {
            WriteFrame(output, Settings, 0x1, 0, []);
        }
        return output;
    }

    /// <summary>A header block of literal fields without indexing, new names (RFC 7541 6.2.2), raw octets.</summary>
    private static byte[] Block(IEnumerable<(string Name, string Value)> fields)
    {
        var block = new MemoryStream();
        foreach (var (name, value) in fields)
        {
            block.WriteByte(0x00);
            WriteString(block, Encoding.Latin1.GetBytes(name));
            WriteString(block, Encoding.Latin1.GetBytes(value));
        }
        return block.ToArray();
    }

    private static void WriteString(Stream stream, byte[] value)
    {
        // 7-bit prefix integer (RFC 7541 5.1), H bit clear.
        if (value.Length < 127)
        {
            stream.WriteByte((byte)value.Length);
        }
        else
        {
            stream.WriteByte(127);
            var rest = value.Length - 127;
            while (rest >= 128)
            {
                stream.WriteByte((byte)((rest & 0x7F) | 0x80));
                rest >>= 7;
            }
            stream.WriteByte((byte)rest);
        }
        stream.Write(value);
    }

    private static void WriteFrame(Stream stream, byte type, byte flags, int streamId, byte[] payload)
    {
        Span<byte> header = stackalloc byte[9];
        header[0] = (byte)(payload.Length >> 16);
        header[1] = (byte)(payload.Length >> 8);
        header[2] = (byte)payload.Length;
        header[3] = type;
        header[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(header[5..], streamId);
        stream.Write(header);
        stream.Write(payload);
    }
}
