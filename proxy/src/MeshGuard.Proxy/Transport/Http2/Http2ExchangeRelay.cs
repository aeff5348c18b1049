using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>How the request body's way to the far end ended.</summary>
internal enum RequestBodyOutcome
{
    Sent,
    /// <summary>The stream ended first (reset, or a whole answer came before the whole body; the rest was dropped).</summary>
    StreamEnded,
    /// <summary>The caller's upload broke (it went away, or sent a malformed chunk): the far end was told by a reset.</summary>
    CallerFailed,
}

/// <summary>How relaying the answer's body to the caller ended.</summary>
internal enum AnswerBodyOutcome
{
    /// <summary>Passed on whole, trailers included.</summary>
    Relayed,
    /// <summary>The caller went away (or stopped reading); the stream was reset.</summary>
    CallerGone,
    /// <summary>The answer broke after it began (a reset, or more body than its length said): the caller must see it broken, not whole.</summary>
    BrokenMidAnswer,
}

/// <summary>
/// The steps both HTTP/2 client legs take once a stream is open, between a request the sidecar's server holds
/// (<see cref="HttpContext"/>) and an <see cref="Http2ClientStream"/>: the outbound leg to a peer sidecar and the
/// inbound leg to an HTTP/2 app. The body goes out frame by frame beside the wait for the answer; the answer's fields
/// go onto the server's response; its body is moved through pooled buffers, its trailers after it.
/// </summary>
internal static class Http2ExchangeRelay
{
    /// <summary>
    /// Whether the request has a body, and its first octets when the server holds them already (they then go in the
    /// same write as the head). A caller that does not open a stream after all gives them back with <see cref="GiveBack"/>.
    /// </summary>
    public static bool HasBody(HttpContext context, out ReadResult first, out bool haveFirst)
    {
        var request = context.Request;
        var length = request.ContentLength;
        var hasBody = length is > 0 || (length is null && context.Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: true });
        first = default;
        haveFirst = hasBody && request.BodyReader.TryRead(out first);
        return hasBody;
    }

    public static void GiveBack(HttpContext context, in ReadResult first) => context.Request.BodyReader.AdvanceTo(first.Buffer.Start);

    /// <summary>
    /// The request body to the far end, frame by frame as the server reads it; ends the stream after the last octet.
    /// When the far end answered whole before taking all of it (a refusal of a large upload), the rest is read and
    /// dropped, as nginx drains it, so the caller can finish sending and read the answer.
    /// </summary>
    public static async Task<RequestBodyOutcome> SendBodyAsync(PipeReader input, Http2ClientStream stream, ReadResult? first)
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
                    return RequestBodyOutcome.StreamEnded;
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
                    return dropping ? RequestBodyOutcome.StreamEnded : RequestBodyOutcome.Sent;
                }
                result = await input.ReadAsync();
            }
        }
        catch (Http2StreamException)
        {
            return RequestBodyOutcome.StreamEnded;
        }
        catch (Exception e) when (e is IOException or BadHttpRequestException or OperationCanceledException or Microsoft.AspNetCore.Connections.ConnectionResetException)
        {
            stream.Reset();
            return RequestBodyOutcome.CallerFailed;
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
    public static async ValueTask<RequestBodyOutcome> EndBodyAsync(HttpContext context, Http2ClientStream stream, Task<RequestBodyOutcome>? body)
    {
        if (body is null)
        {
            return RequestBodyOutcome.Sent;
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
    /// The answer's status and fields onto the server's response, less what is connection-specific. Null when the
    /// server refuses a field (a Content-Length that is no number): the response is cleared and the answer is not
    /// passed on; the exception says why.
    /// </summary>
    public static InvalidOperationException? TakeAnswerHead(HttpResponse response, Http2ClientStream stream)
    {
        try
        {
            response.StatusCode = stream.Status;
            var headers = response.Headers;
            foreach (var (name, value) in stream.Fields)
            {
                if (!Http2FieldRules.IsConnectionSpecific(name))
                {
                    headers.Append(name, value);
                }
            }
            return null;
        }
        catch (InvalidOperationException e)
        {
            response.Clear();
            return e;
        }
    }

    /// <summary>
    /// The answer's body (and its trailers, where the caller's protocol has them) to the caller. What broke it is
    /// handed to <paramref name="failed"/> (called at most once, before this returns).
    /// </summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    public static async ValueTask<AnswerBodyOutcome> RelayAnswerBodyAsync<TState>(HttpContext context, Http2ClientStream stream, Action<TState, Exception> failed, TState state)
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
                failed(state, e);
                return context.RequestAborted.IsCancellationRequested ? AnswerBodyOutcome.CallerGone : AnswerBodyOutcome.BrokenMidAnswer;
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
                // More body than the answer's Content-Length said: the server refuses it, and the caller must see the
                // answer broken rather than cut to a length that looks whole.
                failed(state, e);
                stream.Reset();
                return AnswerBodyOutcome.BrokenMidAnswer;
            }
            var wrote = !result.Buffer.IsEmpty;
            stream.Consumed(result);
            if (result.IsCompleted && (!wrote || (stream.Trailers.Length > 0 && context.Response.SupportsTrailers())))
            {
                // Nothing to flush; and an answer with no body must stay unstarted, so that an HTTP/2 caller gets it as
                // one HEADERS frame (gRPC's trailers-only answer carries its status there). The last piece of an answer
                // with trailers is left to the answer's end too, which sends it with the trailers in one write (a gRPC
                // answer's message and status).
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
                return AnswerBodyOutcome.CallerGone;
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
        return AnswerBodyOutcome.Relayed;
    }
}
