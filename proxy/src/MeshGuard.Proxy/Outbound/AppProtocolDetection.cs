using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using MeshGuard.Proxy.Inbound;
using MeshGuard.Proxy.Protocols;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http1;
using MeshGuard.Proxy.Transport.Http2;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// Tells what an app speaks on a connection from its first bytes, as Linkerd does: the HTTP/2 preface, an
/// HTTP/1.x request line, or anything else (opaque bytes), within a bounded time (10 s by default); a
/// connection that sends nothing in that time (a protocol whose server speaks first) is opaque too.
/// A detecting port is a Kestrel HTTP/1.1 endpoint whose connection middleware looks at the first bytes: HTTP/2 goes
/// to the sidecar's own HTTP/2 server (<see cref="Http2ServerEndpoint"/>), HTTP/1.1 to its own HTTP/1.1 server (which
/// leaves a connection to Kestrel's at the first request that is not plain), opaque to the port's byte handler.
/// Nothing is consumed: whoever takes the connection reads the same bytes.
/// </summary>
internal sealed class AppProtocolDetection(Http2ServerEndpoint http2, Http1ServerEndpoint http1)
{
    /// <summary>An HTTP/1.x request line longer than this is not one (Kestrel's own limit is 8 KiB).</summary>
    private const int MaxRequestLine = 8 * 1024;

    /// <summary>RFC 9113 section 3.4.</summary>
    private static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    /// <summary>
    /// Listens on <paramref name="endpoint"/> for HTTP/1.1, HTTP/2 prior knowledge and, where
    /// <paramref name="opaque"/> is given, any other bytes; each connection counts against <paramref name="limit"/>
    /// and carries <paramref name="role"/> and, for a port mapped to a service, <paramref name="destination"/>.
    /// <paramref name="intercept"/>, where given, sees each connection first: it may set the destination, or take
    /// the connection itself (returning true). Other bytes go to the opaque handler on a connection with a
    /// destination or a redirected one; otherwise to HTTP/1.1, which answers them 400.
    /// </summary>
    public static void Listen(
        KestrelServerOptions kestrel, IPEndPoint endpoint, ListenerRole role, MeshGuard.Hosting.ConnectionLimit limit, TimeSpan timeout,
        Http2ServerEndpoint http2, Http1ServerEndpoint http1,
        Func<ConnectionContext, Task>? opaque = null, OutboundDestination? destination = null, Func<ConnectionContext, ValueTask<bool>>? intercept = null)
    {
        var detection = new AppProtocolDetection(http2, http1);
        kestrel.Listen(endpoint, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            limit.Apply(listen);
            listen.Use(kestrelHttp1 => connection => detection.DispatchAsync(connection, kestrelHttp1, role, destination, timeout, opaque, intercept));
        });
    }

    private async Task DispatchAsync(
        ConnectionContext connection, ConnectionDelegate kestrelHttp1, ListenerRole role, OutboundDestination? destination, TimeSpan timeout,
        Func<ConnectionContext, Task>? opaque, Func<ConnectionContext, ValueTask<bool>>? intercept)
    {
        connection.Features.Set(role);
        if (destination is not null)
        {
            connection.Features.Set(destination);
        }
        if (intercept is not null && await intercept(connection))
        {
            return;
        }
        DetectedProtocol protocol;
        using (var limit = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed))
        {
            limit.CancelAfter(timeout);
            try
            {
                protocol = await DetectAsync(connection.Transport.Input, limit.Token);
            }
            catch (OperationCanceledException) when (!connection.ConnectionClosed.IsCancellationRequested)
            {
                protocol = DetectedProtocol.Opaque;
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
        switch (protocol)
        {
            case DetectedProtocol.Http2:
                await http2.ServeAsync(connection, new DuplexStream(connection.Transport));
                break;
            case DetectedProtocol.Opaque when opaque is not null
                && (connection.Features.Get<OutboundDestination>() is not null || connection.Features.Get<RedirectedConnection>() is not null):
                await opaque(connection);
                break;
            case DetectedProtocol.Http1:
                await http1.ServeAsync(connection, kestrelHttp1);
                break;
            default:
                await kestrelHttp1(connection);
                break;
        }
    }

    /// <summary>Reads until the first bytes decide; consumes nothing. Cancellation (the time limit) is the caller's.</summary>
    public static async ValueTask<DetectedProtocol> DetectAsync(PipeReader input, CancellationToken cancellation)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellation);
            var buffer = result.Buffer;
            var verdict = Classify(buffer);
            // Nothing consumed; all examined while undecided, so the next read waits for more bytes.
            input.AdvanceTo(buffer.Start, verdict is null ? buffer.End : buffer.Start);
            if (verdict is { } known)
            {
                return known;
            }
            if (result.IsCompleted || result.IsCanceled)
            {
                // The peer stopped sending before its bytes decided: whatever they are, they are not HTTP.
                return DetectedProtocol.Opaque;
            }
        }
    }

    /// <summary>A verdict, or null while the bytes so far could still become either HTTP version.</summary>
    internal static DetectedProtocol? Classify(ReadOnlySequence<byte> buffer)
    {
        var length = (int)Math.Min(buffer.Length, Preface.Length);
        Span<byte> head = stackalloc byte[Preface.Length];
        buffer.Slice(0, length).CopyTo(head);
        if (head[..length].SequenceEqual(Preface[..length]))
        {
            return length == Preface.Length ? DetectedProtocol.Http2 : null;
        }
        return ClassifyRequestLine(buffer);
    }

    /// <summary>"METHOD SP target SP HTTP/1.x CRLF": the method's letters come first, the line ends within 8 KiB.</summary>
    private static DetectedProtocol? ClassifyRequestLine(ReadOnlySequence<byte> buffer)
    {
        var reader = new SequenceReader<byte>(buffer);
        var methodLength = 0;
        while (reader.TryPeek(out var b) && b is >= (byte)'A' and <= (byte)'Z')
        {
            reader.Advance(1);
            methodLength++;
        }
        if (reader.End)
        {
            return methodLength <= 16 ? null : DetectedProtocol.Opaque;
        }
        if (methodLength == 0 || methodLength > 16 || !reader.IsNext((byte)' '))
        {
            return DetectedProtocol.Opaque;
        }
        if (!reader.TryReadTo(out ReadOnlySequence<byte> line, "\r\n"u8))
        {
            return buffer.Length > MaxRequestLine ? DetectedProtocol.Opaque : null;
        }
        if (line.Length < 9)
        {
            return DetectedProtocol.Opaque;
        }
        Span<byte> version = stackalloc byte[9];
        line.Slice(line.Length - 9).CopyTo(version);
        return version.SequenceEqual(" HTTP/1.1"u8) || version.SequenceEqual(" HTTP/1.0"u8) ? DetectedProtocol.Http1 : DetectedProtocol.Opaque;
    }
}

/// <summary>
/// Where the app's connection goes whatever its Host says: the service of an <c>--outbound-tcp</c> port, whose
/// detected HTTP is routed there (as a transparently redirected connection goes to its original destination).
/// </summary>
internal sealed record OutboundDestination(OutboundTcpMapping Mapping)
{
    public string Service => Mapping.Service;
}
