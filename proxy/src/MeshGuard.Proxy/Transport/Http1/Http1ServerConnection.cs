using System.Buffers;
using System.Buffers.Text;
using System.IO.Pipelines;
using System.Net;
using System.Runtime.CompilerServices;
using MeshGuard.Proxy.Transport.Http2;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>Deadlines of the own HTTP/1.1 server (Kestrel's: headers 10 s by default, keep-alive 130 s).</summary>
internal sealed record Http1ServerLimits(TimeSpan RequestHeadersTimeout, TimeSpan KeepAliveTimeout);

/// <summary>
/// The sidecar's own HTTP/1.1 server for one connection: the app's connections on the outbound port and HTTP/1.1
/// peers on the inbound port. It reads plain requests (<see cref="Http1RequestHead"/>) one after the other, runs the
/// handler inline for each on the connection's own loop, and writes the answer straight into the connection's
/// output. The first request that is not plain ends its part: the connection, with that request's bytes still
/// unread, goes on to Kestrel's HTTP/1.1 server, which serves the rest of it (upgrades, 100-continue, and every
/// refusal of a malformed head, as before). One object, with its HttpContext, header collections and feature table,
/// serves every request of the connection.
/// </summary>
internal sealed partial class Http1ServerConnection : IHeartbeatTarget, IHttp1ResponseHead, IDisposable
{
    private static readonly byte[]?[] StatusLines = new byte[]?[600];

    /// <summary>What is read and dropped of a body the handler left unread before the connection is closed instead.</summary>
    private const long MaxDrainOctets = 1024 * 1024;

    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);

    private readonly ConnectionContext _connection;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly Http2RequestHandler _application;
    private readonly Http1ServerLimits _limits;
    private readonly ILogger _logger;
    private readonly DefaultHttpContext _context;
    private readonly RequestFeatureTable _features;
    private readonly FieldList _requestHeaders = new();
    private readonly FieldList _responseHeaders = new();
    private readonly HpackFieldStrings _strings = new();
    private readonly Http1RequestBodyReader _bodyReader;
    private readonly Http1ResponseBodyWriter _bodyWriter;
    private readonly string _scheme;
    private CancellationTokenSource _aborted = new();
    private Http1RequestHead _head;
    private List<(Func<object, Task> Callback, object State)>? _onStarting;
    private List<(Func<object, Task> Callback, object State)>? _onCompleted;
    private int _statusCode = StatusCodes.Status200OK;
    private string? _reasonPhrase;
    private bool _closeAfter;
    private volatile bool _closeRequested;
    private long _requests;

    // The next head's read, begun once a request's octets are all read while it is served (ReadAhead); taken by ReadHeadAsync.
    private ValueTask<ReadResult> _readAhead;
    private bool _readingAhead;

    // When the wait for the present head ends (ticks of Environment.TickCount64), 0 while a request is served.
    private long _deadline;

    public Http1ServerConnection(ConnectionContext connection, Http2RequestHandler application, Http1ServerLimits limits, ILogger logger)
    {
        _connection = connection;
        _input = connection.Transport.Input;
        _output = connection.Transport.Output;
        _application = application;
        _limits = limits;
        _logger = logger;
        _bodyReader = new Http1RequestBodyReader(_input, bodyRead: ReadAhead);
        _bodyWriter = new Http1ResponseBodyWriter(this, _output);
        _scheme = connection.Features.Get<ITlsConnectionFeature>() is not null ? "https" : "http";
        _features = new RequestFeatureTable(this, OwnFeatures, Serves, connection.Features);
        _context = new DefaultHttpContext(this);
    }

    /// <summary>
    /// Serves requests until the connection ends (false) or a request that is not plain arrives (true: the caller
    /// hands the connection, that request's bytes unread, to Kestrel's HTTP/1.1 server).
    /// </summary>
    public async Task<bool> RunAsync()
    {
        ServerHeartbeat.Add(this);
        using var closed = _connection.ConnectionClosed.UnsafeRegister(static state => ((Http1ServerConnection)state!).OnConnectionClosed(), this);
        using var shutdown = _connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested
            .UnsafeRegister(static state => ((Http1ServerConnection)state!).OnCloseRequested(), this);
        try
        {
            while (true)
            {
                switch (await ReadHeadAsync())
                {
                    case RequestHeadStatus.NotPlain:
                        return true;
                    case RequestHeadStatus.NeedMore:
                        return false;
                }
                if (!await ServeRequestAsync())
                {
                    return false;
                }
            }
        }
        catch (Exception e) when (e is IOException or ConnectionResetException or ConnectionAbortedException or OperationCanceledException or ObjectDisposedException)
        {
            return false;
        }
        finally
        {
            ServerHeartbeat.Remove(this);
            _bodyReader.End();
        }
    }

    public void Dispose() => _aborted.Dispose();

    /// <summary>Waits for the next head: Plain (read), NotPlain (left unread), NeedMore (the connection ended).</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private async ValueTask<RequestHeadStatus> ReadHeadAsync()
    {
        var now = Environment.TickCount64;
        var begun = false;
        Volatile.Write(ref _deadline, now + (long)(_requests == 0 ? _limits.RequestHeadersTimeout : _limits.KeepAliveTimeout).TotalMilliseconds);
        while (true)
        {
            if (_closeRequested)
            {
                return RequestHeadStatus.NeedMore;
            }
            ReadResult result;
            if (_readingAhead)
            {
                _readingAhead = false;
                result = await _readAhead;
            }
            else
            {
                result = await _input.ReadAsync();
            }
            var buffer = result.Buffer;
            if (result.IsCanceled)
            {
                _input.AdvanceTo(buffer.Start);
                continue;
            }
            if (!begun && !buffer.IsEmpty)
            {
                // The first octets of a request: from now its head has the headers timeout.
                begun = true;
                if (_requests > 0)
                {
                    Volatile.Write(ref _deadline, Environment.TickCount64 + (long)_limits.RequestHeadersTimeout.TotalMilliseconds);
                }
            }
            var status = Http1RequestHead.TryParse(buffer, _requestHeaders, _strings, _head.RawTarget, out var head, out var end);
            switch (status)
            {
                case RequestHeadStatus.Plain:
                    Volatile.Write(ref _deadline, 0);
                    _head = head;
                    _path = _query = null;
                    _input.AdvanceTo(end);
                    if (head.NamesFields)
                    {
                        HopByHopFields.RemoveNamed(_requestHeaders, _requestHeaders[Microsoft.Net.Http.Headers.HeaderNames.Connection]);
                    }
                    return status;
                case RequestHeadStatus.NotPlain:
                    // Handed over once the head is whole (or too large for anyone): Kestrel's first request on the
                    // connection then drops what this one's Connection header named.
                    if (HopByHopFields.ScanNamed(buffer, Http1RequestHead.MaxHeadBytes) is { } named)
                    {
                        Volatile.Write(ref _deadline, 0);
                        _connection.Features.Set(new Http1HandOver(named));
                        _input.AdvanceTo(buffer.Start);
                        return status;
                    }
                    break;
            }
            if (result.IsCompleted)
            {
                _input.AdvanceTo(buffer.End);
                return RequestHeadStatus.NeedMore;
            }
            _input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Runs the handler for the head just read and ends its answer; false when the connection ends after it.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ServeRequestAsync()
    {
        _requests++;
        _bodyReader.Start(_head.ContentLength, _head.Chunked);
        _closeAfter = _head.Close;
        if (_bodyReader.Finished)
        {
            // Nothing more of this request is to be read: the next read starts now, and sees a caller that hangs up.
            // A body starts it once read to its end (the body reader calls ReadAhead).
            ReadAhead();
        }
        Exception? failure = null;
        try
        {
            await _application(_context);
        }
        catch (Exception e)
        {
            failure = e;
        }
        var reusable = await EndAnswerAsync(failure);
        if (_onCompleted is { Count: > 0 } completed)
        {
            foreach (var (callback, state) in completed)
            {
                await callback(state);
            }
        }
        reusable = reusable && !_closeAfter && !_closeRequested && await _bodyReader.DrainAsync(MaxDrainOctets, DrainTimeout);
        _bodyReader.End();
        if (reusable)
        {
            ResetRequest();
        }
        return reusable;
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private async ValueTask<bool> EndAnswerAsync(Exception? failure)
    {
        if (failure is not null)
        {
            Log.HandlerFailed(_logger, _connection.ConnectionId, failure);
            if (_bodyWriter.Started)
            {
                _connection.Abort(new ConnectionAbortedException("the handler failed after its answer began"));
                return false;
            }
            _responseHeaders.Clear();
            _statusCode = StatusCodes.Status500InternalServerError;
            _reasonPhrase = null;
            _closeAfter = true;
        }
        try
        {
            if (!_bodyWriter.End())
            {
                // Fewer octets than the Content-Length promised: the caller must see the answer broken, not whole.
                _connection.Abort(new ConnectionAbortedException("the answer's body is shorter than its Content-Length"));
                return false;
            }
        }
        catch (InvalidOperationException e)
        {
            // A field that cannot be written as HTTP/1.1 (a control character): nothing of the head was sent.
            Log.HandlerFailed(_logger, _connection.ConnectionId, e);
            _connection.Abort(new ConnectionAbortedException(e.Message));
            return false;
        }
        var flushed = await _output.FlushAsync();
        return !flushed.IsCompleted && !flushed.IsCanceled;
    }

    private void ResetRequest()
    {
        _requestHeaders.Clear();
        _responseHeaders.Clear();
        _statusCode = StatusCodes.Status200OK;
        _reasonPhrase = null;
        _bodyWriter.Reset();
        _traceIdentifier = null;
        _requestStream = null;
        _features.Reset();
        _onStarting?.Clear();
        _onCompleted?.Clear();
        if (!_aborted.TryReset())
        {
            _aborted.Dispose();
            _aborted = new CancellationTokenSource();
        }
    }

    // ---- The answer's head ----

    void IHttp1ResponseHead.Write(bool final)
    {
        if (_onStarting is { Count: > 0 } starting)
        {
            // Rare on this path (no handler of the sidecar registers one); run in order, as Kestrel does, before the head.
            for (var i = starting.Count - 1; i >= 0; i--)
            {
                starting[i].Callback(starting[i].State).GetAwaiter().GetResult();
            }
            starting.Clear();
        }
        var status = _statusCode;
        var headRequest = ReferenceEquals(_head.Method, HttpMethods.Head);
        var noBody = headRequest || status is < 200 or 204 or 304;
        long? length = status is < 200 or 204 ? null : _responseHeaders.ContentLength;
        ResponseFraming framing;
        if (noBody)
        {
            framing = ResponseFraming.None;
        }
        else if (length is null && final)
        {
            length = 0;
            framing = ResponseFraming.Length;
        }
        else
        {
            framing = length is null ? ResponseFraming.Chunked : ResponseFraming.Length;
        }
        // Checked before a byte is written: a field no HTTP/1.1 reader could take whole leaves nothing half-written.
        foreach (var (name, values) in _responseHeaders)
        {
            if (!Http1HeadWriter.IsToken(name))
            {
                throw new InvalidOperationException("an answer field name that is not a token");
            }
            foreach (var value in values)
            {
                if (value is null || !Http1HeadWriter.IsFieldValue(value))
                {
                    throw new InvalidOperationException("an answer field value with a control character");
                }
            }
            if (name.Length == 10 && string.Equals(name, "Connection", StringComparison.OrdinalIgnoreCase) && values.ToString().Contains("close", StringComparison.OrdinalIgnoreCase))
            {
                _closeAfter = true;
            }
        }
        _output.Write(StatusLine(status, _reasonPhrase));
        foreach (var (name, values) in _responseHeaders)
        {
            if (IsFramingField(name))
            {
                continue;
            }
            foreach (var value in values)
            {
                Http1HeadWriter.WriteField(_output, name, value!);
            }
        }
        if (length is { } declared)
        {
            Http1HeadWriter.WriteContentLength(_output, declared);
        }
        else if (framing == ResponseFraming.Chunked)
        {
            Http1HeadWriter.WriteChunkedFraming(_output);
        }
        if (_closeAfter)
        {
            _output.Write("Connection: close\r\n"u8);
        }
        if (!_responseHeaders.ContainsKey(Microsoft.Net.Http.Headers.HeaderNames.Date))
        {
            _output.Write(HttpDateLine.Current);
        }
        Http1HeadWriter.EndHead(_output);
        _bodyWriter.Begin(framing, framing == ResponseFraming.Length ? length!.Value : 0);
    }

    /// <summary>Fields the server writes itself: the framing, and Connection (close is said once, when it is meant).</summary>
    private static bool IsFramingField(string name) => name.Length switch
    {
        10 => string.Equals(name, "Connection", StringComparison.OrdinalIgnoreCase) || string.Equals(name, "Keep-Alive", StringComparison.OrdinalIgnoreCase),
        14 => string.Equals(name, "Content-Length", StringComparison.OrdinalIgnoreCase),
        17 => string.Equals(name, "Transfer-Encoding", StringComparison.OrdinalIgnoreCase),
        _ => false,
    };

    private static ReadOnlySpan<byte> StatusLine(int status, string? reason)
    {
        if (reason is null && status is >= 100 and < 600)
        {
            return StatusLines[status] ??= MakeStatusLine(status, Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status));
        }
        return MakeStatusLine(status, reason ?? "");
    }

    private static byte[] MakeStatusLine(int status, string reason)
    {
        var clean = Http1HeadWriter.IsFieldValue(reason) ? reason : "";
        var line = new byte[9 + 3 + 1 + clean.Length + 2];
        "HTTP/1.1 "u8.CopyTo(line);
        Utf8Formatter.TryFormat(Math.Clamp(status, 100, 999), line.AsSpan(9), out _);
        line[12] = (byte)' ';
        System.Text.Encoding.Latin1.GetBytes(clean, line.AsSpan(13));
        line[^2] = (byte)'\r';
        line[^1] = (byte)'\n';
        return line;
    }

    // ---- The connection's life ----

    public void Tick(long now)
    {
        var deadline = Volatile.Read(ref _deadline);
        if (deadline != 0 && now >= deadline)
        {
            _connection.Abort(new ConnectionAbortedException("a request head was not finished in time"));
        }
        else if (_bodyReader.TooSlow())
        {
            _connection.Abort(new ConnectionAbortedException("the request body came slower than 240 octets a second"));
        }
    }

    /// <summary>
    /// The read after a request whose octets were all read, begun as its handler starts (or, for a request with a body,
    /// as its last octet is taken or its last chunk and trailers are read). A transport that reads only when asked (the
    /// inbound port's own TLS connection) would otherwise not see the caller close its end until the answer was written:
    /// the request, and the app's work for it, would go on for nobody. The end of the input with nothing before it
    /// aborts the request, as Kestrel takes a FIN from an HTTP/1.1 client; octets of a next request stay for
    /// ReadHeadAsync, which takes this read's result as its first.
    /// </summary>
    private void ReadAhead()
    {
        if (_readingAhead)
        {
            return;
        }
        // Kept to be awaited once, by ReadHeadAsync (_readingAhead says it is not yet); never awaited when the
        // connection ends after this request.
#pragma warning disable CA2012
        _readAhead = ReadAheadAsync();
#pragma warning restore CA2012
        _readingAhead = true;
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private async ValueTask<ReadResult> ReadAheadAsync()
    {
        ReadResult result;
        try
        {
            result = await _input.ReadAsync();
        }
        catch (Exception)
        {
            OnConnectionClosed();
            throw;
        }
        if (result.IsCompleted && result.Buffer.IsEmpty)
        {
            OnConnectionClosed();
        }
        return result;
    }

    private void OnConnectionClosed()
    {
        try
        {
            _aborted.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>The host is stopping: an idle connection ends now, a busy one after its answer.</summary>
    private void OnCloseRequested()
    {
        _closeRequested = true;
        if (Volatile.Read(ref _deadline) != 0)
        {
            _input.CancelPendingRead();
        }
    }

    private IPEndPoint? RemoteEndPoint => _connection.RemoteEndPoint as IPEndPoint;

    private IPEndPoint? LocalEndPoint => _connection.LocalEndPoint as IPEndPoint;

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "request handler failed on connection {ConnectionId}")]
        public static partial void HandlerFailed(ILogger logger, string connectionId, Exception exception);
    }
}
