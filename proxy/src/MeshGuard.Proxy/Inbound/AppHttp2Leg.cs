using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http2;
using Microsoft.Extensions.ObjectPool;
using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// The inbound sidecar's leg to an app that speaks HTTP/2 (cleartext, prior knowledge: gRPC services), below
/// HttpClient: the authorized request's method and canonical target and the caller's fields, less those only a
/// sidecar may set, encoded straight from the server's collection into a header block on a pooled, multiplexed
/// connection to the app (<see cref="Http2ConnectionPool"/>); the body and the answer move as on the outbound leg
/// (<see cref="Http2ExchangeRelay"/>), trailers included. Nothing is retried: a stream the app refused or reset is
/// the caller's 502, an app that cannot be reached its 503.
/// Callers of different identities never share a connection to the app (<see cref="PerCaller{T}"/>).
/// </summary>
internal sealed partial class AppHttp2Leg : IAsyncDisposable
{
    private static readonly TimeSpan TrimPeriod = TimeSpan.FromSeconds(15);

    private static readonly Action<Exchange, HpackEncoder, IBufferWriter<byte>> WriteFields = WriteRequestFields;

    private static readonly Action<AppHttp2Leg, Exception> Failed = static (leg, e) => LogAnswerBroke(leg._logger, e.Message);

    private readonly PerCaller<Http2ConnectionPool> _pools;
    private readonly ObjectPool<Exchange> _exchanges;
    private readonly ITimer _trimTimer;
    private readonly ILogger<AppHttp2Leg> _logger;

    public AppHttp2Leg(EndPoint app, TimeProvider time, ILogger<AppHttp2Leg> logger)
    {
        _logger = logger;
        _pools = new(() => new Http2ConnectionPool(cancellation => DialAsync(app, cancellation), "the app"));
        _exchanges = new DefaultObjectPool<Exchange>(new Exchange.Policy(time), 1024);
        _trimTimer = time.CreateTimer(static state => _ = ((AppHttp2Leg)state!).TrimAsync(), this, TrimPeriod, TrimPeriod);
    }

    private async Task TrimAsync()
    {
        var now = Environment.TickCount64;
        foreach (var pool in _pools.All)
        {
            await pool.TrimAsync(now);
        }
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    public async ValueTask<AppLegOutcome> ForwardAsync(HttpContext context, AuthorizedRequest authorized, string caller, StringValues forwardedClientCert, ForwardedHeaders forwarding)
    {
        authorized = authorized.Required();
        var request = context.Request;
        var exchange = _exchanges.Get();
        try
        {
            exchange.Authorized = authorized;
            exchange.ForwardedClientCert = forwardedClientCert;
            exchange.Authority = request.Headers.Host.ToString();
            if (!Http2RequestFields.TryTake(request.Headers, exchange.Fields, forwarding)
                || !Http2RequestFields.AreSendable(forwardedClientCert) || !HpackEncoder.IsSendable(exchange.Authority))
            {
                return AppLegOutcome.UnsendableHeader;
            }
            var hasBody = Http2ExchangeRelay.HasBody(context, out var first, out var haveFirst);
            Http2ClientStream stream;
            try
            {
                stream = await _pools.For(caller).OpenStreamAsync(WriteFields, exchange, endStream: !hasBody, moreToCome: haveFirst, context.RequestAborted);
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
            {
                if (haveFirst)
                {
                    Http2ExchangeRelay.GiveBack(context, first);
                }
                if (context.RequestAborted.IsCancellationRequested)
                {
                    return AppLegOutcome.CallerGone;
                }
                if (e is not IOException)
                {
                    // Refused, or no answer to the connect in time: nothing listens (the handler says so).
                    return AppLegOutcome.AppUnreachable;
                }
                // The connection broke while it was set up: the app speaks no HTTP/2 there.
                LogConnectFailed(_logger, e.Message);
                return AppLegOutcome.AppFailed;
            }
            return await ExchangeAsync(context, stream, exchange, hasBody, haveFirst ? first : null);
        }
        finally
        {
            _exchanges.Return(exchange);
        }
    }

    /// <summary>One stream's exchange, once it is open.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private async ValueTask<AppLegOutcome> ExchangeAsync(HttpContext context, Http2ClientStream stream, Exchange exchange, bool hasBody, System.IO.Pipelines.ReadResult? first)
    {
        Task<RequestBodyOutcome>? body = null;
        try
        {
            body = hasBody ? Http2ExchangeRelay.SendBodyAsync(context.Request.BodyReader, stream, first) : null;
            // Each resets the stream, which ends the wait for the answer: the caller going away, or the app taking
            // longer to answer than any request may wait (as the HTTP/1.1 leg's activity timeout).
            using (context.RequestAborted.UnsafeRegister(static s => ((Http2ClientStream)s!).Reset(), stream))
            {
                using (exchange.StartAnswerWait(AppHttp1Leg.ActivityTimeout, stream))
                {
                    try
                    {
                        await stream.ReadHeadAsync();
                    }
                    catch (Http2StreamException e)
                    {
                        await Http2ExchangeRelay.EndBodyAsync(context, stream, body);
                        if (context.RequestAborted.IsCancellationRequested)
                        {
                            return AppLegOutcome.CallerGone;
                        }
                        LogNoAnswer(_logger, exchange.AnswerWaitEnded ? "no answer in time" : e.Message);
                        return AppLegOutcome.AppFailed;
                    }
                }
                if (Http2ExchangeRelay.TakeAnswerHead(context.Response, stream) is { } refused)
                {
                    stream.Reset();
                    await Http2ExchangeRelay.EndBodyAsync(context, stream, body);
                    LogAnswerBroke(_logger, refused.Message);
                    return AppLegOutcome.AppFailed;
                }
                var relayed = await Http2ExchangeRelay.RelayAnswerBodyAsync(context, stream, Failed, this);
                if (relayed == AnswerBodyOutcome.BrokenMidAnswer && context.Response.HasStarted)
                {
                    // Part of the answer is on its way: the caller must see it broken, not whole.
                    context.Abort();
                    relayed = AnswerBodyOutcome.CallerGone;
                }
                var sent = await Http2ExchangeRelay.EndBodyAsync(context, stream, body);
                return relayed switch
                {
                    AnswerBodyOutcome.Relayed => sent == RequestBodyOutcome.CallerFailed ? AppLegOutcome.CallerGone : AppLegOutcome.Relayed,
                    AnswerBodyOutcome.CallerGone => AppLegOutcome.CallerGone,
                    _ => AppLegOutcome.AppFailed,
                };
            }
        }
        finally
        {
            // A body upload still running (only after an unexpected failure) keeps the stream object from ever serving another request.
            stream.Release(reusable: body is null || body.IsCompleted);
        }
    }

    /// <summary>Under the connection's lock: the authorized request's head as HTTP/2 fields.</summary>
    private static void WriteRequestFields(Exchange exchange, HpackEncoder encoder, IBufferWriter<byte> block)
    {
        var target = exchange.Authorized.Request;
        encoder.WriteField(block, ":method", target.Method, HpackIndexing.Index);
        encoder.WriteField(block, ":scheme", "http", HpackIndexing.Index);
        if (exchange.Authority.Length > 0)
        {
            encoder.WriteField(block, ":authority", exchange.Authority, HpackIndexing.Index);
        }
        // Exactly the target policy decided on.
        var query = target.Target.Query;
        encoder.WriteField(block, ":path", query.IsEmpty ? target.Path : string.Concat(target.Path, query), HpackIndexing.NoIndex);
        Http2RequestFields.Write(encoder, block, exchange.Fields);
        foreach (var value in exchange.ForwardedClientCert)
        {
            encoder.WriteField(block, MeshHeaders.ForwardedClientCert, value ?? "", HpackIndexing.Index);
        }
    }

    private static async ValueTask<Stream> DialAsync(EndPoint app, CancellationToken cancellation) =>
        new NetworkStream(await TcpDial.ConnectAsync(app, cancellation), ownsSocket: true);

    public async ValueTask DisposeAsync()
    {
        await _trimTimer.DisposeAsync();
        foreach (var pool in _pools.All)
        {
            await pool.DisposeAsync();
        }
    }

    /// <summary>A request's state while its head is written and its answer awaited; pooled, with its timer.</summary>
    private sealed class Exchange : IDisposable
    {
        private readonly TimeProvider _time;
        private CancellationTokenSource _answerWait;

        private Exchange(TimeProvider time)
        {
            _time = time;
            _answerWait = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        }

        public AuthorizedRequest Authorized { get; set; }

        public StringValues ForwardedClientCert { get; set; }

        public string Authority { get; set; } = "";

        public List<KeyValuePair<string, StringValues>> Fields { get; } = [];

        /// <summary>The wait for the answer's head ran out of time.</summary>
        public bool AnswerWaitEnded => _answerWait.IsCancellationRequested;

        /// <summary>Resets <paramref name="stream"/> if no answer began within <paramref name="limit"/>; disposing the registration stops the watch.</summary>
        public CancellationTokenRegistration StartAnswerWait(TimeSpan limit, Http2ClientStream stream)
        {
            _answerWait.CancelAfter(limit);
            return _answerWait.Token.UnsafeRegister(static s => ((Http2ClientStream)s!).Reset(), stream);
        }

        public void Dispose() => _answerWait.Dispose();

        private void Clear()
        {
            if (!_answerWait.TryReset())
            {
                _answerWait.Dispose();
                _answerWait = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
            }
            Authorized = default;
            ForwardedClientCert = default;
            Authority = "";
            Fields.Clear();
        }

        public sealed class Policy(TimeProvider time) : PooledObjectPolicy<Exchange>
        {
            public override Exchange Create() => new(time);

            public override bool Return(Exchange obj)
            {
                obj.Clear();
                return true;
            }
        }
    }

    [LoggerMessage(EventId = 306, Level = LogLevel.Warning, Message = "inbound: no HTTP/2 connection to the app: {Reason}")]
    private static partial void LogConnectFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 307, Level = LogLevel.Warning, Message = "inbound: the HTTP/2 app did not answer: {Reason}")]
    private static partial void LogNoAnswer(ILogger logger, string reason);

    [LoggerMessage(EventId = 308, Level = LogLevel.Warning, Message = "inbound: the HTTP/2 app's answer broke: {Reason}")]
    private static partial void LogAnswerBroke(ILogger logger, string reason);
}
