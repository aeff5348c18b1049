using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// One request's stream on an <see cref="Http2ServerConnection"/>, and the request's HttpContext features over it.
/// The connection's reader fills the request (fields, body pipe, trailers) and starts the application on the reader's
/// own thread; the application answers from whatever thread it runs on, straight into the connection's frame queue.
/// The object, with its HttpContext, header collections and feature tables, serves later streams of the same
/// connection once the application finished with it and the reader saw it leave the stream table.
/// </summary>
internal sealed partial class Http2ServerStream : Http2StreamSendWindow, IHpackFieldSink, IDisposable
{
    private static readonly string?[] StatusTexts = new string?[600];

    private readonly Http2ServerConnection _connection;
    private readonly DefaultHttpContext _context;
    private readonly RequestFeatureTable _features;
    private readonly FieldList _requestHeaders = new();
    private readonly FieldList _responseHeaders = new();
    private readonly Http2RequestBodyReader _bodyReader;
    private readonly Http2ResponseBodyWriter _bodyWriter;
    private CancellationTokenSource _aborted = new();
    private Pipe? _body;
    private FieldList? _requestTrailers;
    private FieldList? _responseTrailers;
    private Stream? _requestStream;
    private Stream? _responseStream;
    private List<(Func<object, Task> Callback, object State)>? _onStarting;
    private List<(Func<object, Task> Callback, object State)>? _onCompleted;

    // The request as it arrives (the reader's thread only, until the application starts).
    private string? _method;
    private string? _scheme;
    private string? _authority;
    private string? _path;
    private string? _protocol;
    private string? _malformed;
    private bool _fieldsStarted;
    private bool _inTrailers;
    // The current header block's fields (pseudo-fields apart) and size, held to RequestFieldBounds.
    private int _blockFields;
    private int _blockBytes;
    private bool _cookieSeen;
    private long _receivedBody;
    private long? _declaredLength;
    private bool _expectContinue;
    private bool _continueSent;

    public Http2ServerStream(Http2ServerConnection connection)
    {
        _connection = connection;
        _bodyReader = new Http2RequestBodyReader(this);
        _bodyWriter = new Http2ResponseBodyWriter(this);
        _features = new RequestFeatureTable(this, OwnFeatures, Serves, connection.Features);
        _context = new DefaultHttpContext(this);
        _onAppDone = OnAppDone;
        _onFinished = OnFinished;
    }

    public int Id { get; private set; }

    // ---- State guarded by the connection's lock ----

    /// <summary>The stream is in the connection's table: frames for it are taken.</summary>
    internal bool InTable { get; set; }

    /// <summary>The peer ended its side (END_STREAM) or the stream was reset.</summary>
    internal bool RequestEnded { get; set; }

    /// <summary>This side ended its answer (END_STREAM) or the stream was reset: nothing more is sent on it.</summary>
    internal bool ResponseEnded { get; set; }

    internal bool HeadersSent { get; set; }

    /// <summary>What the peer may still send on this stream.</summary>
    internal int ReceiveWindow { get; set; }

    /// <summary>Body octets the application consumed and the peer was not yet told of.</summary>
    internal int UnackedWindow { get; set; }

    /// <summary>Body octets received and not yet consumed: given back to the connection's window when the stream is dropped.</summary>
    internal int Unconsumed { get; set; }

    // ---- Opening (the reader's thread) ----

    /// <summary>Under the connection's lock: the object starts stream <paramref name="id"/>, new or used before.</summary>
    internal void Open(int id, int sendWindow, int receiveWindow)
    {
        Id = id;
        SendWindow = sendWindow;
        ReceiveWindow = receiveWindow;
        InTable = true;
        RequestEnded = false;
        ResponseEnded = false;
        HeadersSent = false;
        WindowWaiter = null;
        UnackedWindow = 0;
        Unconsumed = 0;
        _method = _scheme = _authority = _path = _protocol = _malformed = null;
        _fieldsStarted = _inTrailers = _cookieSeen = false;
        BeyondFieldBounds = false;
        _receivedBody = 0;
        _declaredLength = null;
        _expectContinue = _continueSent = false;
        _requestHeaders.Clear();
        _responseHeaders.Clear();
        _requestTrailers?.Clear();
        _responseTrailers?.Clear();
        _statusCode = StatusCodes.Status200OK;
        _reasonPhrase = null;
        _hasStarted = false;
        _responseCompleted = false;
        _completing = null;
        _traceIdentifier = null;
        _features.Reset();
        _onStarting?.Clear();
        _onCompleted?.Clear();
        _bodyWriter.Reset();
        _bodyReader.Reset();
        if (!_aborted.TryReset())
        {
            _aborted.Dispose();
            _aborted = new CancellationTokenSource();
        }
    }

    /// <summary>The reader begins a header block for this stream: the request's head, or (after it) its trailers.</summary>
    internal void BeginHeaderBlock(bool trailers)
    {
        _inTrailers = trailers;
        _blockFields = _blockBytes = 0;
    }

    /// <summary>
    /// The request's head holds more fields than <see cref="RequestFieldBounds"/> allow: it is answered 431 and never
    /// reaches the application. Its fields beyond the bounds were decoded (the table must stay in step) and dropped.
    /// </summary>
    internal bool BeyondFieldBounds { get; private set; }

    void IHpackFieldSink.OnField(string name, string value)
    {
        if (_malformed is not null)
        {
            return;
        }
        _blockBytes += HpackDynamicTable.EntrySize(name, value);
        if ((name[0] != ':' && ++_blockFields > RequestFieldBounds.MaxFields + RequestFieldBounds.AddedOnTheWay)
            || _blockBytes > RequestFieldBounds.MaxSectionBytes + RequestFieldBounds.AddedOnTheWayBytes)
        {
            if (_inTrailers)
            {
                _malformed = "trailers beyond the field bounds";
                return;
            }
            BeyondFieldBounds = true;
        }
        if (BeyondFieldBounds && name[0] != ':')
        {
            return;
        }
        if (_inTrailers)
        {
            if (name[0] == ':')
            {
                _malformed = "a pseudo-field in trailers";
                return;
            }
            (_requestTrailers ??= new FieldList(2)).Append(name, value);
            return;
        }
        if (name[0] == ':')
        {
            if (_fieldsStarted)
            {
                _malformed = "a pseudo-field after a regular field";
                return;
            }
            ref var slot = ref PseudoField(name);
            if (Unsafe.IsNullRef(ref slot))
            {
                _malformed = "an unknown pseudo-field " + name;
                return;
            }
            if (slot is not null)
            {
                _malformed = "a repeated pseudo-field " + name;
                return;
            }
            slot = value;
            return;
        }
        _fieldsStarted = true;
        if (Http2FieldRules.IsConnectionSpecific(name))
        {
            _malformed = "the connection-specific field " + name;
            return;
        }
        switch (name)
        {
            case "te" when !string.Equals(value, "trailers", StringComparison.Ordinal):
                _malformed = "te other than trailers";
                return;
            case "content-length":
                if (_declaredLength is not null || !long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var length))
                {
                    _malformed = "a content-length that is not one number";
                    return;
                }
                _declaredLength = length;
                break;
            case "cookie":
                // Split cookie fields are joined again for an HTTP/1.1 hop (RFC 9113 8.2.3).
                if (_cookieSeen)
                {
                    _requestHeaders[Microsoft.Net.Http.Headers.HeaderNames.Cookie] = string.Concat(_requestHeaders[Microsoft.Net.Http.Headers.HeaderNames.Cookie].ToString(), "; ", value);
                    return;
                }
                _cookieSeen = true;
                break;
            case "expect":
                _expectContinue = string.Equals(value, "100-continue", StringComparison.OrdinalIgnoreCase);
                break;
        }
        _requestHeaders.Append(name, value);
    }

    private ref string? PseudoField(string name)
    {
        switch (name)
        {
            case ":method":
                return ref _method;
            case ":scheme":
                return ref _scheme;
            case ":authority":
                return ref _authority;
            case ":path":
                return ref _path;
            case ":protocol":
                return ref _protocol;
            default:
                return ref Unsafe.NullRef<string?>();
        }
    }

    /// <summary>The request's head is whole: null when it may start, else why it is malformed (RFC 9113 8.3).</summary>
    internal string? EndRequestHead(bool endStream)
    {
        if (_malformed is not null)
        {
            return _malformed;
        }
        if (_method is null)
        {
            return "no :method";
        }
        var connect = string.Equals(_method, "CONNECT", StringComparison.Ordinal);
        if (_protocol is not null && !connect)
        {
            return ":protocol outside CONNECT";
        }
        if (connect && _protocol is null)
        {
            if (_scheme is not null || _path is not null || _authority is null)
            {
                return "a CONNECT with :scheme or :path, or without :authority";
            }
        }
        else if (_scheme is null || string.IsNullOrEmpty(_path))
        {
            return "no :scheme or :path";
        }
        else if (_path[0] != '/' && !(_path == "*" && string.Equals(_method, "OPTIONS", StringComparison.Ordinal)))
        {
            // Origin form only, or OPTIONS * (RFC 9113 8.3.1): anything else has no path a server could route.
            return "a :path that is not origin-form";
        }
        if (_authority is not null)
        {
            if (_requestHeaders.TryGetValue("host", out var host) && !string.Equals(host.ToString(), _authority, StringComparison.Ordinal))
            {
                return "a host field unlike :authority";
            }
            _requestHeaders[Microsoft.Net.Http.Headers.HeaderNames.Host] = _authority;
        }
        if (endStream && _declaredLength is > 0)
        {
            return "content-length promises a body the stream does not have";
        }
        if (!endStream)
        {
            _body = PipePool.StreamBodies.Rent();
        }
        else
        {
            RequestEnded = true;
        }
        _rawTarget = _path ?? "";
        var query = _rawTarget.IndexOf('?', StringComparison.Ordinal);
        _queryString = query < 0 ? "" : _rawTarget[query..];
        _pathString = _rawTarget.Length == 0 || _rawTarget[0] != '/' ? "" : query < 0 ? _rawTarget : _rawTarget[..query];
        return null;
    }

    /// <summary>Trailers arrived (with END_STREAM): null when they are well-formed.</summary>
    internal string? EndTrailers() => _malformed;

    // ---- Request body (the reader writes, the application reads) ----

    /// <summary>The reader's thread: DATA octets for the body; false when they break the declared length.</summary>
    internal bool WriteBody(in ReadOnlySequence<byte> data)
    {
        _receivedBody += data.Length;
        if (_declaredLength is { } declared && _receivedBody > declared)
        {
            return false;
        }
        PipePool.Append(_body!.Writer, data);
        return true;
    }

    /// <summary>The reader's thread: the body ended (END_STREAM); false when it is shorter than declared.</summary>
    internal bool EndBody()
    {
        if (_declaredLength is { } declared && _receivedBody != declared)
        {
            return false;
        }
        _body?.Writer.Complete();
        _bodyWriterDone = true;
        return true;
    }

    private bool _bodyWriterDone;

    /// <summary>The reader's thread: the body broke off (a reset, a malformed frame, the connection's end).</summary>
    internal void FailBody(Exception reason)
    {
        if (_body is not null && !_bodyWriterDone)
        {
            _bodyWriterDone = true;
            _body.Writer.Complete(reason);
        }
    }

    internal Pipe? BodyPipe => _body;

    /// <summary>The application's first read of a body it was asked to confirm: the interim 100 goes first.</summary>
    internal void BeforeBodyRead()
    {
        if (_expectContinue && !_continueSent && !_hasStarted)
        {
            _continueSent = true;
            _connection.SendContinue(this);
        }
    }

    /// <summary>The application consumed <paramref name="octets"/> of the body: window goes back to the peer.</summary>
    internal void BodyConsumed(int octets)
    {
        if (octets > 0)
        {
            _connection.ReturnWindow(this, octets);
        }
    }

    // ---- Running the application ----

    private readonly Action _onAppDone;
    private ValueTask<bool> _handling;

    /// <summary>The reader's thread: runs the handler up to its first wait.</summary>
    internal void Start(Http2RequestHandler handler)
    {
        ExecutionContext.SuppressFlow();
#pragma warning disable CA2012 // kept in a field and taken exactly once, by OnAppDone
        try
        {
            _handling = handler(_context);
        }
        catch (Exception e)
        {
            _handling = ValueTask.FromException<bool>(e);
        }
#pragma warning restore CA2012
        finally
        {
            ExecutionContext.RestoreFlow();
        }
        if (_handling.IsCompleted)
        {
            OnAppDone();
        }
        else
        {
            _handling.GetAwaiter().UnsafeOnCompleted(_onAppDone);
        }
    }

    private void OnAppDone()
    {
        Exception? failure = null;
        try
        {
            // Taken exactly once: a pooled call's box goes back here.
            _ = _handling.GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            failure = e;
        }
        _handling = default;
#pragma warning disable CA2012 // kept in a field and taken exactly once, by OnFinished
        _finishing = FinishAsync(failure);
#pragma warning restore CA2012
        if (_finishing.IsCompleted)
        {
            OnFinished();
        }
        else
        {
            _finishing.GetAwaiter().UnsafeOnCompleted(_onFinished);
        }
    }

    private readonly Action _onFinished;
    private ValueTask<bool> _finishing;

    /// <summary>Takes the finishing step's result: its pooled state machine goes back.</summary>
    private void OnFinished()
    {
        var finishing = _finishing;
        _finishing = default;
        finishing.GetAwaiter().GetResult();
    }

    public void Dispose() => _aborted.Dispose();

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private async ValueTask<bool> FinishAsync(Exception? failure)
    {
        try
        {
            if (failure is not null)
            {
                _connection.LogApplicationFailed(Id, failure);
                if (!_hasStarted)
                {
                    _responseHeaders.Clear();
                    _statusCode = StatusCodes.Status500InternalServerError;
                    _bodyWriter.Reset();
                }
                else
                {
                    _connection.ResetStream(this, Http2ErrorCode.InternalError);
                }
            }
            await CompleteResponseAsync(null);
            _completing = null;
        }
        catch (Exception e)
        {
            _connection.LogApplicationFailed(Id, e);
            _connection.ResetStream(this, Http2ErrorCode.InternalError);
        }
        if (_onCompleted is { Count: > 0 } completed)
        {
            for (var i = completed.Count - 1; i >= 0; i--)
            {
                try
                {
                    await completed[i].Callback(completed[i].State);
                }
                catch (Exception e)
                {
                    _connection.LogApplicationFailed(Id, e);
                }
            }
        }
        _bodyReader.Release();
        _bodyWriter.Release();
        _connection.ApplicationDone(this);
        return true;
    }

    // ---- Response ----

    private int _statusCode;
    private string? _reasonPhrase;
    private bool _hasStarted;
    private bool _responseCompleted;

    internal static string StatusText(int status)
    {
        if ((uint)status >= StatusTexts.Length)
        {
            return status.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return StatusTexts[status] ??= status.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Whether the answer may carry body octets (HEAD, 204 and 304 answers never do).</summary>
    internal bool BodyAllowed => _statusCode is not (204 or 304) && !HttpMethods.IsHead(_method ?? "");

    internal int StatusCode => _statusCode;

    internal FieldList ResponseHeaders => _responseHeaders;

    internal FieldList? ResponseTrailers => _responseTrailers;

    /// <summary>Runs the OnStarting callbacks once; after it the head is fixed.</summary>
    private async ValueTask StartResponseAsync()
    {
        if (_hasStarted)
        {
            return;
        }
        if (_onStarting is { Count: > 0 } starting)
        {
            for (var i = starting.Count - 1; i >= 0; i--)
            {
                await starting[i].Callback(starting[i].State);
            }
            starting.Clear();
        }
        _hasStarted = true;
    }

    /// <summary>Sends what the application wrote so far, its head first; ends the stream when a declared length is reached.</summary>
    internal async ValueTask<FlushResult> FlushResponseAsync(CancellationToken cancellation)
    {
        if (!_hasStarted)
        {
            await StartResponseAsync();
        }
        var data = _bodyWriter.Buffered;
        if (!BodyAllowed)
        {
            _bodyWriter.Consumed(data.Length);
            data = default;
        }
        var ends = _responseHeaders.ContentLength is { } length && _bodyWriter.Sent + data.Length >= length && _responseTrailers is not { Count: > 0 };
        var completed = await _connection.SendAsync(this, data, ends, cancellation);
        _bodyWriter.Consumed(data.Length);
        if (ends && completed)
        {
            _responseCompleted = true;
        }
        return new FlushResult(isCanceled: false, isCompleted: !completed);
    }

    private Task? _completing;

    /// <summary>Ends the answer once (the application's CompleteAsync or its end): its head when nothing was sent, what is buffered, and its trailers or END_STREAM.</summary>
    internal ValueTask CompleteResponseAsync(Exception? failure)
    {
        if (_completing is { } underWay)
        {
            return new(underWay);
        }
        if (_responseCompleted)
        {
            return ValueTask.CompletedTask;
        }
        _responseCompleted = true;
        if (failure is not null)
        {
            _connection.ResetStream(this, Http2ErrorCode.InternalError);
            return ValueTask.CompletedTask;
        }
        var ending = EndResponseAsync();
        if (!ending.IsCompleted)
        {
            _completing = ending.AsTask();
            return new(_completing);
        }
        return ending;
    }

    private async ValueTask EndResponseAsync()
    {
        if (!_hasStarted)
        {
            await StartResponseAsync();
        }
        var data = BodyAllowed ? _bodyWriter.Buffered : default;
        var trailers = _responseTrailers is { Count: > 0 };
        if (trailers && _connection.TrySendLast(this, data))
        {
            _bodyWriter.Consumed(_bodyWriter.Buffered.Length);
            return;
        }
        await _connection.SendAsync(this, data, endStream: !trailers, CancellationToken.None);
        _bodyWriter.Consumed(_bodyWriter.Buffered.Length);
        if (trailers)
        {
            _connection.SendTrailers(this);
        }
    }

    /// <summary>A reset from either side, or the connection's end: whoever waits on the request stops waiting.</summary>
    internal void Abort()
    {
        try
        {
            _aborted.Cancel();
        }
        catch (AggregateException e)
        {
            _connection.LogApplicationFailed(Id, e);
        }
    }

    /// <summary>The reader, between frames, found the object free: the body pipe goes back once both its ends are done.</summary>
    internal void Recycle()
    {
        if (_body is { } body)
        {
            if (!_bodyWriterDone)
            {
                body.Writer.Complete();
            }
            _body = null;
            PipePool.StreamBodies.Return(body);
        }
        _bodyWriterDone = false;
    }
}
