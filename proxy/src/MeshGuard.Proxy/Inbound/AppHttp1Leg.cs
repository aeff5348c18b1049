using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using MeshGuard.Proxy.Protocols;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http1;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Inbound;

/// <summary>What became of a request sent to the app.</summary>
internal enum AppLegOutcome
{
    /// <summary>The app's answer was passed on whole.</summary>
    Relayed,
    /// <summary>Nothing listens at the app's port: nothing was sent.</summary>
    AppUnreachable,
    /// <summary>A header the caller sent cannot be written as HTTP/1.1 (a control character, a non-token name): nothing was sent.</summary>
    UnsendableHeader,
    /// <summary>The app's answer was not valid HTTP/1.1, or the app closed or stalled before answering whole.</summary>
    AppFailed,
    /// <summary>The caller went away.</summary>
    CallerGone,
}

/// <summary>
/// The inbound sidecar's leg to an HTTP/1.1 app, written by hand below HttpClient: the authorized request's
/// method and canonical target, the caller's headers read from the server's own collection and written straight
/// into a pooled keep-alive connection's pipe, the body streamed through pooled buffers (framed as it came, or
/// chunked when its length is unknown), and the app's answer parsed strictly and put straight onto the response.
/// A request without a body whose reused connection turns out closed goes once more on a new one.
/// </summary>
internal sealed partial class AppHttp1Leg(AppConnectionPool pool, ILogger<AppHttp1Leg> logger)
{
    private ILogger Logger => logger;

    /// <summary>How long the app may be silent while a request waits on it (as YARP's activity timeout).</summary>
    public static readonly TimeSpan ActivityTimeout = TimeSpan.FromSeconds(100);

    /// <summary>Request fields the leg writes itself, or that stop at this hop (x-forwarded-client-cert, which it also writes, goes with the forgeable fields: MeshHeaders.IsForgeable).</summary>
    private static readonly HashSet<string> NotForwarded = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "TE", "Content-Length",
        "Expect", "HTTP2-Settings",
    };

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    public async ValueTask<AppLegOutcome> ForwardAsync(HttpContext context, AuthorizedRequest authorized, StringValues forwardedClientCert, ForwardedHeaders forwarding)
    {
        authorized = authorized.Required();
        var request = context.Request;
        var host = request.Headers.Host.ToString();
        if (!Http1HeadWriter.IsFieldValue(host))
        {
            return AppLegOutcome.UnsendableHeader;
        }
        var length = request.ContentLength;
        var hasBody = length is > 0 || (length is null && context.Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: true });
        var headRequest = HttpMethods.IsHead(request.Method);
        var response = context.Response;
        var connection = pool.TryRent();
        var reused = connection is not null;
        while (true)
        {
            if (connection is null)
            {
                try
                {
                    connection = await pool.OpenAsync(context.RequestAborted);
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException)
                {
                    return context.RequestAborted.IsCancellationRequested ? AppLegOutcome.CallerGone : AppLegOutcome.AppUnreachable;
                }
            }
            var exchange = new Exchange(this, context, connection, headRequest);
            ExchangeOutcome outcome;
            // Ended before the connection is given back, so a caller going away later never touches a connection that
            // another request holds by then.
            var registration = context.RequestAborted.UnsafeRegister(static state => ((AppConnection)state!).Abort(), connection);
            try
            {
                if (!WriteHead(connection.Writer, request, authorized, host, forwardedClientCert, forwarding, length, hasBody))
                {
                    // Nothing was flushed: the connection, with the head half written in its buffer, is dropped unsent.
                    connection.Dispose();
                    return AppLegOutcome.UnsendableHeader;
                }
                Task<bool>? body = hasBody ? CopyRequestBodyAsync(request.BodyReader, connection, chunked: length is null) : null;
                outcome = await exchange.RunAsync(body, mayRetry: reused && !hasBody);
            }
            finally
            {
                registration.Dispose();
            }
            if (outcome == ExchangeOutcome.RetryOnNewConnection)
            {
                LogStaleConnection(logger, connection.Uses);
                connection.Dispose();
                connection = null;
                reused = false;
                continue;
            }
            if (outcome == ExchangeOutcome.Reusable && !connection.Deadline.IsCancellationRequested)
            {
                pool.Return(connection);
                return AppLegOutcome.Relayed;
            }
            connection.Dispose();
            return outcome switch
            {
                ExchangeOutcome.Done => AppLegOutcome.Relayed,
                ExchangeOutcome.CallerGone => AppLegOutcome.CallerGone,
                _ => AppLegOutcome.AppFailed,
            };
        }
    }

    /// <summary>One field of the app's request, unless it stops at this hop; false when it cannot be written as HTTP/1.1.</summary>
    private static bool WriteRequestField(PipeWriter writer, string name, StringValues values, ForwardedHeaders forwarding)
    {
        if (NotForwarded.Contains(name) || MeshHeaders.IsForgeable(name, forwarding))
        {
            return true;
        }
        if (!Http1HeadWriter.IsToken(name))
        {
            return false;
        }
        foreach (var value in values)
        {
            if (value is not null && !Http1HeadWriter.IsFieldValue(value))
            {
                return false;
            }
            Http1HeadWriter.WriteField(writer, name, value ?? "");
        }
        return true;
    }

    /// <summary>
    /// The request head, checked as it is written (one pass over the headers): false when a name is not a token or a
    /// value holds what HTTP/1.1 cannot carry (CR, LF, NUL, other controls, characters beyond ISO-8859-1).
    /// </summary>
    private static bool WriteHead(PipeWriter writer, HttpRequest request, AuthorizedRequest authorized, string host, StringValues forwardedClientCert, ForwardedHeaders forwarding, long? length, bool hasBody)
    {
        Http1HeadWriter.WriteRequestLine(writer, request.Method, authorized.Request.Path, authorized.Request.Target.Query);
        Http1HeadWriter.WriteField(writer, "Host", host);
        // The sidecar's own servers keep a request's fields in a FieldList, whose enumerator is a struct: through the
        // interface it was boxed, once per request.
        if (request.Headers is FieldList fields)
        {
            foreach (var field in fields)
            {
                if (!WriteRequestField(writer, field.Key, field.Value, forwarding))
                {
                    return false;
                }
            }
        }
        else
        {
            foreach (var field in request.Headers)
            {
                if (!WriteRequestField(writer, field.Key, field.Value, forwarding))
                {
                    return false;
                }
            }
        }
        foreach (var value in forwardedClientCert)
        {
            Http1HeadWriter.WriteField(writer, MeshHeaders.ForwardedClientCert, value ?? "");
        }
        if (length is { } known && (known > 0 || !HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method)))
        {
            Http1HeadWriter.WriteContentLength(writer, known);
        }
        else if (hasBody)
        {
            Http1HeadWriter.WriteChunkedFraming(writer);
        }
        Http1HeadWriter.EndHead(writer);
        return true;
    }

    /// <summary>
    /// The caller's body to the app, beside the wait for the answer (an app may answer before it read it all, and
    /// then stop reading): true when all of it was sent. The app refusing more is not an error here, the answer
    /// decides; a caller whose body broke off ends the exchange, since the app would wait for the rest forever.
    /// </summary>
    private static async Task<bool> CopyRequestBodyAsync(PipeReader body, AppConnection connection, bool chunked)
    {
        var output = connection.Writer;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await body.ReadAsync();
            }
            catch (Exception e) when (e is IOException or BadHttpRequestException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
            {
                connection.Abort();
                return false;
            }
            if (result.IsCanceled)
            {
                return false;
            }
            var buffer = result.Buffer;
            if (!buffer.IsEmpty)
            {
                if (chunked)
                {
                    ChunkedEncoder.WriteChunkStart(output, buffer.Length);
                }
                foreach (var segment in buffer)
                {
                    output.Write(segment.Span);
                }
                if (chunked)
                {
                    ChunkedEncoder.WriteChunkEnd(output);
                }
            }
            body.AdvanceTo(buffer.End);
            if (result.IsCompleted && chunked)
            {
                ChunkedEncoder.WriteLastChunk(output);
            }
            try
            {
                var flushed = await output.FlushAsync(connection.Deadline);
                if (result.IsCompleted || flushed.IsCompleted || flushed.IsCanceled)
                {
                    return result.IsCompleted && !flushed.IsCanceled;
                }
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException or ObjectDisposedException)
            {
                return false;
            }
        }
    }

    private enum ExchangeOutcome
    {
        /// <summary>Answered whole, and the connection may carry the next request.</summary>
        Reusable,
        /// <summary>Answered whole; the connection is done.</summary>
        Done,
        RetryOnNewConnection,
        Failed,
        CallerGone,
    }

    /// <summary>One request on one connection: the app's head, then its body, onto the server's response.</summary>
    private readonly struct Exchange(AppHttp1Leg leg, HttpContext context, AppConnection connection, bool headRequest)
    {
        [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
        public async ValueTask<ExchangeOutcome> RunAsync(Task<bool>? body, bool mayRetry)
        {
            var reader = connection.Reader;
            var response = context.Response;
            ExchangeOutcome outcome;
            try
            {
                if (body is null && (await connection.Writer.FlushAsync(connection.Deadline)).IsCompleted)
                {
                    return ExchangeOutcome.Failed;
                }
                connection.Wait(ActivityTimeout);
                var head = default(Http1ResponseHead);
                while (true)
                {
                    var result = await reader.ReadAsync(connection.Deadline);
                    var buffer = result.Buffer;
                    var parsed = Http1ResponseHead.TryParse(buffer, headRequest, connection.Fields.For(response, trailers: false), out head, out var consumed, out var error);
                    if (parsed == Http1ResponseHead.ParseStatus.Done)
                    {
                        reader.AdvanceTo(consumed);
                        break;
                    }
                    if (parsed == Http1ResponseHead.ParseStatus.Invalid)
                    {
                        reader.AdvanceTo(buffer.Start);
                        LogInvalidAnswer(leg.Logger, error ?? "");
                        response.Headers.Clear();
                        return await StopAsync(body, ExchangeOutcome.Failed);
                    }
                    if (result.IsCompleted)
                    {
                        reader.AdvanceTo(buffer.Start);
                        // A kept-alive connection the app had closed meanwhile: nothing of this request reached it.
                        return await StopAsync(body, buffer.IsEmpty && mayRetry ? ExchangeOutcome.RetryOnNewConnection : ExchangeOutcome.Failed);
                    }
                    reader.AdvanceTo(buffer.Start, buffer.End);
                }
                response.StatusCode = head.Status;
                if (head.HasContentLength && head.Status is not (204 or < 200))
                {
                    response.ContentLength = head.ContentLength;
                }
                if (head.ConnectionOptions is { } options)
                {
                    HopByHopFields.RemoveNamed(response.Headers, options);
                }
                var complete = head.Framing switch
                {
                    BodyFraming.None => true,
                    BodyFraming.ContentLength => await CopyLengthAsync(head.ContentLength),
                    BodyFraming.Chunked => await CopyChunkedAsync(),
                    _ => await CopyToEndAsync(),
                };
                outcome = !complete ? ExchangeOutcome.Failed
                    : head.KeepAlive && head.Framing != BodyFraming.UntilClose && !connection.HoldsUnaskedInput() ? ExchangeOutcome.Reusable
                    : ExchangeOutcome.Done;
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                if (context.RequestAborted.IsCancellationRequested)
                {
                    return await StopAsync(body, ExchangeOutcome.CallerGone);
                }
                if (mayRetry && !context.Response.HasStarted && e is IOException or SocketException && connection.Uses > 0 && !connection.Deadline.IsCancellationRequested)
                {
                    return await StopAsync(body, ExchangeOutcome.RetryOnNewConnection);
                }
                LogAppBroke(leg.Logger, e.Message);
                return await StopAsync(body, ExchangeOutcome.Failed);
            }
            finally
            {
                connection.Fields.Release();
            }
            if (body is not null && !body.IsCompleted && outcome == ExchangeOutcome.Reusable)
            {
                // The app answered before it read the whole body and kept the connection: it reads the rest and drops
                // it (as nginx does for a `return`). The caller has its answer now; the body goes on to the app, so the
                // caller's stream ends cleanly instead of being reset, and the connection stays in step.
                await context.Response.CompleteAsync();
                await body;
            }
            if (body is not null && (!body.IsCompleted || !body.Result))
            {
                // The app answered before it took the whole body (or the body broke off): the answer stands, but this
                // connection is out of step now.
                return await StopAsync(body, outcome == ExchangeOutcome.Failed ? outcome : ExchangeOutcome.Done);
            }
            return connection.EndWait() ? outcome : ExchangeOutcome.Failed;
        }

        /// <summary>Ends the body copy (if any) before the connection is given up, so nothing writes to it afterwards.</summary>
        private async ValueTask<ExchangeOutcome> StopAsync(Task<bool>? body, ExchangeOutcome outcome)
        {
            if (body is null)
            {
                return outcome;
            }
            if (!body.IsCompleted)
            {
                connection.Abort();
                context.Request.BodyReader.CancelPendingRead();
            }
            await body;
            return outcome == ExchangeOutcome.Reusable ? ExchangeOutcome.Done : outcome;
        }

        /// <summary>
        /// The most of the app's answer handed to the caller's stream between two flushes. The app's connection reads
        /// up to 96 KiB ahead; written whole, the stream's buffer grew past 85 KB, a large-object array per stream that
        /// the shared pool then kept on every thread: 19-23 MB of them in the inbound sidecar after the bench's 1 MiB
        /// downloads.
        /// </summary>
        private const int MaxUnflushed = 64 * 1024;

        /// <summary>What of <paramref name="buffer"/> is passed on before the next flush: at most <see cref="MaxUnflushed"/>, and at most <paramref name="left"/>.</summary>
        private static ReadOnlySequence<byte> Unflushed(in ReadOnlySequence<byte> buffer, long left = MaxUnflushed)
        {
            var most = Math.Min(left, MaxUnflushed);
            return buffer.Length > most ? buffer.Slice(0, most) : buffer;
        }

        [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
        private async ValueTask<bool> CopyLengthAsync(long length)
        {
            var reader = connection.Reader;
            var output = context.Response.BodyWriter;
            while (length > 0)
            {
                var result = await reader.ReadAsync(connection.Deadline);
                var buffer = result.Buffer;
                if (buffer.IsEmpty && result.IsCompleted)
                {
                    return false;
                }
                var part = Unflushed(buffer, length);
                foreach (var segment in part)
                {
                    output.Write(segment.Span);
                }
                length -= part.Length;
                reader.AdvanceTo(part.End);
                // The last piece too: the server does not send what an answer leaves unflushed when it ends.
                if (!await FlushAsync(output))
                {
                    return false;
                }
            }
            return true;
        }

        [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
        private async ValueTask<bool> CopyChunkedAsync()
        {
            var reader = connection.Reader;
            var output = context.Response.BodyWriter;
            var decoder = default(ChunkedDecoder);
            var trailers = connection.Fields.For(context.Response, trailers: true);
            while (true)
            {
                var result = await reader.ReadAsync(connection.Deadline);
                var input = Unflushed(result.Buffer);
                var sequence = new SequenceReader<byte>(input);
                var status = decoder.Decode(ref sequence, output, trailers);
                reader.AdvanceTo(sequence.Position, input.End);
                if (status == ChunkedDecoder.Status.Done)
                {
                    return await FlushAsync(output);
                }
                if (status == ChunkedDecoder.Status.Invalid)
                {
                    LogInvalidAnswer(leg.Logger, "malformed chunked body");
                    return false;
                }
                if ((result.IsCompleted && input.Length == result.Buffer.Length) || !await FlushAsync(output))
                {
                    return false;
                }
            }
        }

        [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
        private async ValueTask<bool> CopyToEndAsync()
        {
            var reader = connection.Reader;
            var output = context.Response.BodyWriter;
            while (true)
            {
                var result = await reader.ReadAsync(connection.Deadline);
                var part = Unflushed(result.Buffer);
                foreach (var segment in part)
                {
                    output.Write(segment.Span);
                }
                reader.AdvanceTo(part.End);
                if (!await FlushAsync(output))
                {
                    return false;
                }
                if (result.IsCompleted && part.Length == result.Buffer.Length)
                {
                    return true;
                }
            }
        }

        /// <summary>Sends what was copied so far (the caller's pace holds the app back), and re-arms the app's deadline.</summary>
        private async ValueTask<bool> FlushAsync(PipeWriter output)
        {
            var flushed = await output.FlushAsync(context.RequestAborted);
            connection.Wait(ActivityTimeout);
            return !flushed.IsCanceled && !flushed.IsCompleted;
        }
    }

    [LoggerMessage(EventId = 330, Level = LogLevel.Warning, Message = "inbound: the app's answer was refused: {Reason}")]
    private static partial void LogInvalidAnswer(ILogger logger, string reason);

    [LoggerMessage(EventId = 331, Level = LogLevel.Warning, Message = "inbound: the connection to the app broke: {Reason}")]
    private static partial void LogAppBroke(ILogger logger, string reason);

    [LoggerMessage(EventId = 332, Level = LogLevel.Debug, Message = "inbound: a kept-alive connection to the app was closed after {Uses} requests; sending on a new one")]
    private static partial void LogStaleConnection(ILogger logger, int uses);
}
