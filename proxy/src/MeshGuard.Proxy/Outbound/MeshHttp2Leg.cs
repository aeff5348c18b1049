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
/// connection (<see cref="Http2ConnectionPool"/>); its body goes out as DATA frames, the first of them in the same
/// write as the head when the server already holds it; the answer's fields go straight onto the server's response
/// and its body is moved through pooled buffers. One try at one endpoint; the caller decides about the next.
/// </summary>
internal static class MeshHttp2Leg
{
    /// <summary>How long the peer may take to answer a request whose try has no timeout of its own (as YARP's activity timeout).</summary>
    public static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(100);

    private static readonly Action<(HttpContext Context, OutboundExchange Exchange), HpackEncoder, IBufferWriter<byte>> WriteFields = WriteRequestFields;

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    public static async ValueTask<TryOutcome> ForwardAsync(HttpContext context, MeshEndpoint endpoint, OutboundExchange exchange)
    {
        var request = context.Request;
        if (!Http2RequestFields.TryTake(request.Headers, exchange.Fields, ForwardedHeaders.Keep))
        {
            await Refusal.WriteAsync(context, StatusCodes.Status400BadRequest, "meshguard: a request header holds what HTTP/2 cannot carry\n");
            return TryOutcome.AppSide;
        }
        var hasBody = Http2ExchangeRelay.HasBody(context, out var first, out var haveFirst);
        Http2ClientStream stream;
        try
        {
            stream = await endpoint.Peer.OpenStreamAsync(WriteFields, (context, exchange), endStream: !hasBody, moreToCome: haveFirst, context.RequestAborted);
        }
        catch (Exception e) when (e is SocketException or IOException or AuthenticationException or OperationCanceledException or PeerIdentityException)
        {
            if (haveFirst)
            {
                Http2ExchangeRelay.GiveBack(context, first);
            }
            exchange.Fail(e);
            return context.RequestAborted.IsCancellationRequested ? TryOutcome.AppSide
                : e is PeerIdentityException ? TryOutcome.WrongIdentity
                : TryOutcome.ConnectFailed;
        }
        // The exchange is written out here rather than in a method of its own: each async layer that waits for the
        // answer is one more state machine box per request.
        Task<RequestBodyOutcome>? body = null;
        try
        {
            body = hasBody ? Http2ExchangeRelay.SendBodyAsync(context.Request.BodyReader, stream, haveFirst ? first : null) : null;
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
                var bodyOutcome = await Http2ExchangeRelay.EndBodyAsync(context, stream, body);
                exchange.Fail(e);
                if (context.RequestAborted.IsCancellationRequested || bodyOutcome == RequestBodyOutcome.CallerFailed)
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
                await Http2ExchangeRelay.EndBodyAsync(context, stream, body);
                return TryOutcome.AnswerHeldBack;
            }
            if (Http2ExchangeRelay.TakeAnswerHead(context.Response, stream) is { } refused)
            {
                // A field the server will not take (a Content-Length that is no number): the answer is not passed on.
                stream.Reset();
                await Http2ExchangeRelay.EndBodyAsync(context, stream, body);
                exchange.Fail(refused);
                return TryOutcome.Broken;
            }
            var relayed = await Http2ExchangeRelay.RelayAnswerBodyAsync(context, stream, Failed, exchange);
            if (relayed == AnswerBodyOutcome.BrokenMidAnswer)
            {
                // Part of the answer may have gone: the app must see it broken, not whole (and its upload ends with it).
                context.Abort();
            }
            var sent = await Http2ExchangeRelay.EndBodyAsync(context, stream, body);
            if (relayed != AnswerBodyOutcome.Relayed)
            {
                return relayed == AnswerBodyOutcome.CallerGone ? TryOutcome.AppSide : TryOutcome.BrokenMidAnswer;
            }
            if (sent == RequestBodyOutcome.CallerFailed)
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

    private static readonly Action<OutboundExchange, Exception> Failed = static (exchange, e) => exchange.Fail(e);

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
        Http2RequestFields.Write(encoder, block, state.Exchange.Fields);
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
}
