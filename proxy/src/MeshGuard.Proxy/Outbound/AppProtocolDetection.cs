using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using MeshGuard.Proxy.Inbound;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// The outbound port takes the app's HTTP/1.1 and its cleartext HTTP/2 (prior knowledge, as gRPC clients send
/// it) on one port. Kestrel serves a cleartext endpoint with one protocol only, so the port is an HTTP/1.1
/// endpoint whose connection middleware looks at the first bytes: the 24-byte HTTP/2 preface hands the
/// connection to the HTTP/2 pipeline of a second, HTTP/2-only endpoint (bound to an ephemeral loopback port
/// that closes whatever connects to it directly); anything else goes on as HTTP/1.1. Nothing is consumed:
/// the chosen protocol reads the same bytes.
/// </summary>
internal sealed class AppProtocolDetection
{
    /// <summary>How long a new connection may take to send enough bytes to tell the protocols apart.</summary>
    public static readonly TimeSpan DetectTimeout = TimeSpan.FromSeconds(10);

    /// <summary>RFC 9113 section 3.4.</summary>
    private static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    private ConnectionDelegate? _http2;

    /// <summary>Listens on <paramref name="endpoint"/> for HTTP/1.1 and HTTP/2 prior knowledge, tagging each connection with <paramref name="role"/>.</summary>
    public static void Listen(KestrelServerOptions kestrel, IPEndPoint endpoint, ListenerRole role)
    {
        var detection = new AppProtocolDetection();
        // Bound first, so its pipeline exists before the public endpoint takes a connection.
        kestrel.Listen(new IPEndPoint(endpoint.Address, 0), listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            listen.Use(next =>
            {
                detection._http2 = next;
                return static connection =>
                {
                    connection.Abort();
                    return Task.CompletedTask;
                };
            });
        });
        kestrel.Listen(endpoint, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            listen.Use(http1 => connection => detection.DispatchAsync(connection, http1, role));
        });
    }

    private async Task DispatchAsync(ConnectionContext connection, ConnectionDelegate http1, ListenerRole role)
    {
        connection.Features.Set(role);
        bool http2;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed))
        {
            timeout.CancelAfter(DetectTimeout);
            try
            {
                http2 = await StartsWithHttp2PrefaceAsync(connection.Transport.Input, timeout.Token);
            }
            catch (OperationCanceledException)
            {
                connection.Abort();
                return;
            }
        }
        await (http2 ? _http2! : http1)(connection);
    }

    public static async ValueTask<bool> StartsWithHttp2PrefaceAsync(PipeReader input, CancellationToken cancellation)
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
                return false;
            }
        }
    }

    /// <summary>True: the whole preface; false: not HTTP/2; null: a proper prefix of the preface so far.</summary>
    private static bool? Classify(ReadOnlySequence<byte> buffer)
    {
        var length = (int)Math.Min(buffer.Length, Preface.Length);
        Span<byte> head = stackalloc byte[Preface.Length];
        buffer.Slice(0, length).CopyTo(head);
        if (!head[..length].SequenceEqual(Preface[..length]))
        {
            return false;
        }
        return length == Preface.Length ? true : null;
    }
}
