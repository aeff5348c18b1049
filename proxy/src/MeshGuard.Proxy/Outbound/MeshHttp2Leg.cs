using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Authentication;
using MeshGuard.Proxy.FlowLog;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Outbound.Resilience;
using MeshGuard.Proxy.Protocols;
using MeshGuard.Proxy.Routing;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http2;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// The outbound sidecar's leg to a peer sidecar, below HttpClient: the app's request, as the server parsed it, is
/// encoded straight from the server's header collection into an HTTP/2 header block on a pooled, multiplexed mTLS
/// connection (<see cref="PeerConnectionPool"/>); its body goes out as DATA frames, the first of them in the same
/// write as the head when the server already holds it; the answer's fields go straight onto the server's response
/// and its body is moved through pooled buffers. One try at one endpoint; the caller decides about the next.
/// </summary>
internal static class MeshHttp2Leg
{
    /// <summary>How long the peer may take to answer a request whose try has no timeout of its own (as YARP's activity timeout).</summary>
    public static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(100);

    /// <summary>Request fields that stop at this hop or that the leg writes itself (RFC 9113 8.2.2).</summary>
    private static readonly HashSet<string> NotForwarded = new(StringComparer.OrdinalIgnoreCase)
    {
        HeaderNames.Host, HeaderNames.Connection, HeaderNames.KeepAlive, "Proxy-Connection", HeaderNames.TransferEncoding,
        HeaderNames.Upgrade, HeaderNames.TE, "HTTP2-Settings",
    };

    private static readonly Action<(HttpContext Context, OutboundExchange Exchange), HpackEncoder, IBufferWriter<byte>> WriteFields = WriteRequestFields;

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    public static async ValueTask<TryOutcome> ForwardAsync(HttpContext context, MeshEndpoint endpoint, OutboundExchange exchange)
    {
        var request = context.Request;
        if (!TakeFields(request.Headers, exchange.Fields))
        {
            await Refusal.WriteAsync(context, StatusCodes.Status400BadRequest, "meshguard: a request header holds what HTTP/2 cannot carry\n");
            return TryOutcome.AppSide;
        }
        var length = request.ContentLength;
        var hasBody = length is > 0 || (length is null && context.Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: true });
        // When the server holds the first body octets already, they go in the same write as the head.
        ReadResult first = default;
        var haveFirst = hasBody && request.BodyReader.TryRead(out first);
        Http2ClientStream stream;
        try
        {
            stream = await endpoint.Peer.OpenStreamAsync(WriteFields, (context, exchange), endStream: !hasBody, moreToCome: haveFirst, context.RequestAborted);
        }
        catch (Exception e) when (e is SocketException or IOException or AuthenticationException or OperationCanceledException or PeerIdentityException)
        {
            if (haveFirst)
            {
                request.BodyReader.AdvanceTo(first.Buffer.Start);
            }
            exchange.Fail(e);
            return context.RequestAborted.IsCancellationRequested ? TryOutcome.AppSide
                : e is PeerIdentityException ? TryOutcome.WrongIdentity
                : TryOutcome.ConnectFailed;
        }
        // The exchange is written out here rather than in a method of its own: each async layer that waits for the
        // answer is one more state machine box per request.
        Task<BodyOutcome>? body = null;
        try
        {
            body = hasBody ? SendBodyAsync(context.Request.BodyReader, stream, haveFirst ? first : null) : null;
            // Each of these resets the stream, which ends the wait for its answer: the app going away, the try's own
            // timeout, or the answer taking longer than any request may wait.
            using var appGone = context.RequestAborted.UnsafeRegister(static s => ((Http2ClientStream)s!).Reset(), stream);
            using var tryTimeout = exchange.TryToken.UnsafeRegister(static s => ((Http2ClientStream)s!).Reset(), stream);
            if (!exchange.HasTryTimeout)
            {
                exchange.LimitAnswerWait(AnswerTimeout);
            }
            try
            {
                await stream.ReadHeadAsync();
            }
            catch (Http2StreamException e)
            {
                var bodyOutcome = await EndBodyAsync(context, stream, body);
                exchange.Fail(e);
                if (context.RequestAborted.IsCancellationRequested || bodyOutcome == BodyOutcome.AppFailed)
                {
                    return TryOutcome.AppSide;
                }
                if (exchange.TimedOut)
                {
                    return TryOutcome.TimedOut;
                }
                return e.NotProcessed && !hasBody ? TryOutcome.ConnectFailed : TryOutcome.Broken;
            }
            var status = stream.Status;
            var holdBack = status is StatusCodes.Status502BadGateway or StatusCodes.Status503ServiceUnavailable && exchange.TryReserveRetry();
            exchange.MarkAnswered(holdBack);
            if (holdBack)
            {
                stream.Reset();
                await EndBodyAsync(context, stream, body);
                return TryOutcome.AnswerHeldBack;
            }
            var response = context.Response;
            try
            {
                response.StatusCode = status;
                var headers = response.Headers;
                foreach (var (name, value) in stream.Fields)
                {
                    if (!Http2FieldRules.IsConnectionSpecific(name))
                    {
                        headers.Append(name, value);
                    }
                }
            }
            catch (InvalidOperationException e)
            {
                // A field the server will not take (a Content-Length that is no number): the answer is not passed on.
                response.Clear();
                stream.Reset();
                await EndBodyAsync(context, stream, body);
                exchange.Fail(e);
                return TryOutcome.Broken;
            }
            var relayed = await RelayBodyAsync(context, stream, exchange);
            var sent = await EndBodyAsync(context, stream, body);
            if (relayed != TryOutcome.Relayed)
            {
                return relayed;
            }
            if (sent == BodyOutcome.AppFailed)
            {
                return TryOutcome.AppSide;
            }
            return status is StatusCodes.Status502BadGateway or StatusCodes.Status503ServiceUnavailable or StatusCodes.Status504GatewayTimeout
                ? TryOutcome.RelayedFailure
                : TryOutcome.Relayed;
        }
        finally
        {
            // A body upload still running (only after an unexpected failure) keeps the stream object from ever serving another request.
            stream.Release(reusable: body is null || body.IsCompleted);
        }
    }

    /// <summary>The answer's body (and its trailers, where the app's protocol has them) to the app.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private static async ValueTask<TryOutcome> RelayBodyAsync(HttpContext context, Http2ClientStream stream, OutboundExchange exchange)
    {
        var output = context.Response.BodyWriter;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await stream.ReadBodyAsync();
            }
            catch (Http2StreamException e)
            {
                exchange.Fail(e);
                if (context.RequestAborted.IsCancellationRequested)
                {
                    return TryOutcome.AppSide;
                }
                // Part of the answer may have gone: the app must see it broken, not whole.
                context.Abort();
                return TryOutcome.BrokenMidAnswer;
            }
            try
            {
                foreach (var segment in result.Buffer)
                {
                    output.Write(segment.Span);
                }
            }
            catch (InvalidOperationException e)
            {
                // More body than the answer's Content-Length said: the server refuses it, and the app must see the
                // answer broken rather than cut to a length that looks whole.
                exchange.Fail(e);
                stream.Reset();
                context.Abort();
                return TryOutcome.BrokenMidAnswer;
            }
            var wrote = !result.Buffer.IsEmpty;
            stream.Consumed(result);
            if (result.IsCompleted && !wrote)
            {
                // Nothing to flush; and an answer with no body must stay unstarted, so that an HTTP/2 app gets it as
                // one HEADERS frame (gRPC's trailers-only answer carries its status there).
                break;
            }
            // The last piece is flushed too: the server does not send what is left unflushed when the answer ends.
            FlushResult flushed;
            try
            {
                flushed = await output.FlushAsync(context.RequestAborted);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or Microsoft.AspNetCore.Connections.ConnectionResetException)
            {
                flushed = new FlushResult(isCanceled: true, isCompleted: true);
            }
            if (flushed.IsCompleted || flushed.IsCanceled)
            {
                stream.Reset();
                return TryOutcome.AppSide;
            }
            if (result.IsCompleted)
            {
                break;
            }
        }
        if (stream.Trailers.Length > 0 && context.Response.SupportsTrailers())
        {
            foreach (var (name, value) in stream.Trailers)
            {
                context.Response.AppendTrailer(name, value);
            }
        }
        return TryOutcome.Relayed;
    }

    private enum BodyOutcome
    {
        Sent,
        StreamEnded,
        AppFailed,
    }

    /// <summary>
    /// The request body to the peer, frame by frame as the server reads it; ends the stream after the last octet. When
    /// the peer answered whole before taking all of it (a refusal of a large upload), the rest is read and dropped, as
    /// nginx drains it, so the app can finish sending and read the answer.
    /// </summary>
    private static async Task<BodyOutcome> SendBodyAsync(PipeReader input, Http2ClientStream stream, ReadResult? first)
    {
        var dropping = false;
        try
        {
            var result = first ?? await input.ReadAsync();
            while (true)
            {
                if (result.IsCanceled)
                {
                    // The exchange ended without a whole answer before the body did.
                    stream.Reset();
                    return BodyOutcome.StreamEnded;
                }
                var buffer = result.Buffer;
                if (!dropping)
                {
                    try
                    {
                        await SendAsync(stream, buffer, result.IsCompleted);
                    }
                    catch (Http2StreamException) when (stream.ResponseEnded)
                    {
                        dropping = true;
                    }
                }
                input.AdvanceTo(buffer.End);
                if (result.IsCompleted)
                {
                    return dropping ? BodyOutcome.StreamEnded : BodyOutcome.Sent;
                }
                result = await input.ReadAsync();
            }
        }
        catch (Http2StreamException)
        {
            return BodyOutcome.StreamEnded;
        }
        catch (Exception e) when (e is IOException or BadHttpRequestException or OperationCanceledException or Microsoft.AspNetCore.Connections.ConnectionResetException)
        {
            // The app's upload broke (it went away, or sent a malformed chunk): the peer must not take it as whole.
            stream.Reset();
            return BodyOutcome.AppFailed;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask SendAsync(Http2ClientStream stream, ReadOnlySequence<byte> buffer, bool last)
    {
        var remaining = buffer.Length;
        var ended = false;
        foreach (var segment in buffer)
        {
            remaining -= segment.Length;
            if (segment.Length > 0)
            {
                ended = last && remaining == 0;
                await stream.SendDataAsync(segment, endStream: ended, CancellationToken.None);
            }
        }
        if (last && !ended)
        {
            await stream.SendDataAsync(ReadOnlyMemory<byte>.Empty, endStream: true, CancellationToken.None);
        }
    }

    /// <summary>
    /// Waits for the body to be sent. One still going once the exchange ended is stopped: after a whole answer the
    /// rest of the upload is dropped as it comes; otherwise the read is cancelled.
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private static async ValueTask<BodyOutcome> EndBodyAsync(HttpContext context, Http2ClientStream stream, Task<BodyOutcome>? body)
    {
        if (body is null)
        {
            return BodyOutcome.Sent;
        }
        if (!body.IsCompleted)
        {
            stream.Reset();
            if (!stream.ResponseEnded)
            {
                context.Request.BodyReader.CancelPendingRead();
            }
        }
        return await body;
    }

    /// <summary>
    /// The request fields that go on to the peer, into <paramref name="fields"/> (emptied first: a retry takes them
    /// again; the exchange's pool empties it when the request ends), in the one pass over the server's collection the
    /// leg makes (a second pass allocates an enumerator); false if a field holds what HTTP/2 cannot carry. Checked
    /// before the stream opens: the encoder's table must never hold half a block.
    /// </summary>
    private static bool TakeFields(IHeaderDictionary headers, List<KeyValuePair<string, StringValues>> fields)
    {
        fields.Clear();
        foreach (var field in headers)
        {
            var name = field.Key;
            if (MeshHeaders.IsForgeable(name, ForwardedHeaders.Keep))
            {
                continue;
            }
            foreach (var value in field.Value)
            {
                if (value is not null && !HpackEncoder.IsSendable(value))
                {
                    return false;
                }
            }
            if (name.Length == 0 || name[0] == ':' || NotForwarded.Contains(name))
            {
                if (name.Equals(HeaderNames.TE, StringComparison.OrdinalIgnoreCase) && field.Value.Count == 1 && string.Equals(field.Value[0], "trailers", StringComparison.OrdinalIgnoreCase))
                {
                    // The one TE HTTP/2 allows (gRPC sends it).
                    fields.Add(TeTrailers);
                }
                continue;
            }
            fields.Add(field);
        }
        return true;
    }

    private static readonly KeyValuePair<string, StringValues> TeTrailers = new("te", "trailers");

    /// <summary>Under the connection's lock: the request's head as HTTP/2 fields.</summary>
    private static void WriteRequestFields((HttpContext Context, OutboundExchange Exchange) state, HpackEncoder encoder, IBufferWriter<byte> block)
    {
        var request = state.Context.Request;
        encoder.WriteField(block, ":method", request.Method, HpackIndexing.Index);
        encoder.WriteField(block, ":scheme", "https", HpackIndexing.Index);
        encoder.WriteField(block, ":authority", request.Host.Value ?? "", HpackIndexing.Index);
        var path = request.PathBase.HasValue ? (request.PathBase + request.Path).ToUriComponent() : request.Path.ToUriComponent();
        if (path.Length == 0)
        {
            path = "/";
        }
        if (request.QueryString.HasValue)
        {
            path += request.QueryString.Value;
        }
        encoder.WriteField(block, ":path", path, HpackIndexing.NoIndex);
        foreach (var (name, values) in state.Exchange.Fields)
        {
            var indexing = IndexingFor(name);
            foreach (var value in values)
            {
                encoder.WriteField(block, name, value ?? "", indexing);
            }
        }
        // The ids the sidecar made (the app brought none), written from their numbers.
        var ids = state.Exchange.Ids;
        if (ids.RequestId != 0)
        {
            Span<byte> text = stackalloc byte[32];
            ids.WriteRequestId(text);
            HpackEncoder.WriteLiteral(block, FlowFields.RequestIdHeader, text);
        }
        if (ids.TraceId != 0)
        {
            Span<byte> text = stackalloc byte[MadeIds.TraceParentLength];
            ids.WriteTraceParent(text);
            HpackEncoder.WriteLiteral(block, FlowFields.TraceParentHeader, text);
        }
        if (HttpProtocol.IsHttp2(request.Protocol))
        {
            encoder.WriteField(block, MeshHeaders.OriginalProtocol, MeshHeaders.OriginalProtocolHttp2, HpackIndexing.Index);
        }
    }

    /// <summary>Fields that repeat across requests enter the table; per-request values and credentials do not.</summary>
    private static HpackIndexing IndexingFor(string name)
    {
        if (name.Equals(HeaderNames.Authorization, StringComparison.OrdinalIgnoreCase) || name.Equals(HeaderNames.Cookie, StringComparison.OrdinalIgnoreCase)
            || name.Equals(HeaderNames.ProxyAuthorization, StringComparison.OrdinalIgnoreCase))
        {
            return HpackIndexing.NeverIndex;
        }
        if (name.Equals(HeaderNames.ContentLength, StringComparison.OrdinalIgnoreCase) || name.Equals("x-request-id", StringComparison.OrdinalIgnoreCase)
            || name.Equals("traceparent", StringComparison.OrdinalIgnoreCase) || name.Equals("tracestate", StringComparison.OrdinalIgnoreCase)
            || name.Equals(HeaderNames.GrpcTimeout, StringComparison.OrdinalIgnoreCase))
        {
            return HpackIndexing.NoIndex;
        }
        return HpackIndexing.Index;
    }
}
