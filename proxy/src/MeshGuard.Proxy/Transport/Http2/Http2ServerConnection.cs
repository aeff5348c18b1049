using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using MeshGuard.FlowLog;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// What the server runs for each request: a value task (pooled, as the data path's handlers' are) that the server
/// awaits exactly once; its result is not the server's concern.
/// </summary>
internal delegate ValueTask<bool> Http2RequestHandler(HttpContext context);

/// <summary>How an <see cref="Http2ServerConnection"/> bounds its peer.</summary>
/// <param name="HeadersTimeout">How long the preface or a header block may take to arrive whole.</param>
/// <param name="KeepAliveTimeout">How long a connection without streams stays open.</param>
internal sealed record Http2ServerLimits(TimeSpan HeadersTimeout, TimeSpan KeepAliveTimeout)
{
    public const int MaxConcurrentStreams = 100;
    public const int StreamReceiveWindow = 256 * 1024;
    public const int ConnectionReceiveWindow = 1024 * 1024;
    public const int MaxHeaderBlock = HpackDecoder.DefaultMaxFieldListSize;

    /// <summary>CONTINUATION frames one header block may take: a block of the largest size fits in four.</summary>
    public const int MaxContinuations = 64;

    /// <summary>Octets the peer may leave unread in this side's queue (acknowledgements it provokes included) before it is cut.</summary>
    public const int MaxUnreadOutput = 4 * 1024 * 1024;
}

/// <summary>
/// The server side of an HTTP/2 connection over a secured stream (RFC 9113), for the inbound listener: each request
/// runs the application on the reader's thread up to its first wait, with the stream itself as the request's
/// HttpContext features, and the answer is framed from the application's thread straight into the connection's
/// <see cref="Http2FrameQueue"/> (head and first body octets in one write). No thread hand-off per request, no copy
/// of the answer through a per-stream pipe.
/// <para>
/// Bounded: concurrent streams (REFUSED_STREAM beyond), header blocks (size, CONTINUATION count, and time through
/// <see cref="ServerHeartbeat"/>), flow-control windows both ways (a body the application does not read holds
/// at most a stream window, all streams together at most the connection window), and what a peer that does not read
/// may leave queued. Any breach of the protocol ends the connection with GOAWAY; a malformed request resets its stream
/// and never reaches the application.
/// </para>
/// </summary>
internal sealed partial class Http2ServerConnection : IDisposable, IHeartbeatTarget
{
    private readonly ConnectionContext _connection;
    private readonly PipeReader _input;
    private readonly Http2RequestHandler _application;
    private readonly Http2ServerLimits _limits;
    private readonly ILogger _logger;
    private readonly Lock _sync = new();
    private readonly Dictionary<int, Http2ServerStream> _streams = [];
    private readonly List<Http2ServerStream> _retired = [];
    private readonly Stack<Http2ServerStream> _reusable = new();
    private readonly List<Http2ServerStream> _starting = [];
    private readonly HpackEncoder _encoder = new();
    private readonly HpackDecoder _decoder = new();
    private readonly PooledBufferWriter _headerBlock = new(initialCapacity: 256);
    private readonly PooledBufferWriter _incomingBlock = new(initialCapacity: 256);
    private readonly Http2FrameQueue _frames;
    private readonly TaskCompletionSource _allDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private const int MaxKeptStreams = 128;

    private int _lastStreamId;
    private int _active;
    private int _peerInitialWindow = Http2Frame.DefaultWindowSize;
    private long _sendWindow = Http2Frame.DefaultWindowSize;
    private long _receiveWindow = Http2ServerLimits.ConnectionReceiveWindow;
    private int _receiveUnacked;
    private bool _prefaceReceived;
    private bool _settingsReceived;
    private bool _readerEnded;
    private bool _draining;
    private string? _closeReason;

    // The header block being received.
    private int _blockStreamId;
    private Http2ServerStream? _blockStream;
    private bool _blockEndsStream;
    private bool _blockIsTrailers;
    private int _blockContinuations;

    // For the heartbeat (ticks of Environment.TickCount64).
    private readonly long _openedAt = Environment.TickCount64;

    // When the header block under way began, if it is waiting for CONTINUATION frames across reads; 0 otherwise. Set
    // only for a block left unfinished, never while a whole one is being read: the heartbeat reads it on its own thread.
    private long _blockPendingSince;
    private long _idleSince = Environment.TickCount64;

    public Http2ServerConnection(ConnectionContext connection, Stream transport, Http2RequestHandler application, Http2ServerLimits limits, ILogger logger)
    {
        _connection = connection;
        _input = connection.Transport.Input;
        _application = application;
        _limits = limits;
        _logger = logger;
        _frames = new Http2FrameQueue(transport, e => Abort(e.Message));
        RemoteEndPoint = connection.RemoteEndPoint as IPEndPoint;
        LocalEndPoint = connection.LocalEndPoint as IPEndPoint;
    }

    internal IFeatureCollection Features => _connection.Features;

    internal string ConnectionId => _connection.ConnectionId;

    internal IPEndPoint? RemoteEndPoint { get; }

    internal IPEndPoint? LocalEndPoint { get; }

    /// <summary>
    /// Serves the connection until it ends and every request's application is done. The reader runs in a clean
    /// execution context, not the caller's (the host's per-connection one carries its logging scope): no request's
    /// handler sees another's or the connection's async-local values, and starting each handler with the flow
    /// suppressed copies no context (with that scope, two were cloned per request).
    /// </summary>
    public Task RunAsync()
    {
        using (ExecutionContext.SuppressFlow())
        {
            return Task.Run(ServeAsync);
        }
    }

    private async Task ServeAsync()
    {
        QueueSettings();
        _frames.Flush();
        using var shutdown = _connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested
            .UnsafeRegister(static state => ((Http2ServerConnection)state!).Drain(), this);
        ServerHeartbeat.Add(this);
        Exception? failure = null;
        try
        {
            await ReadLoopAsync();
        }
        catch (Http2ConnectionException e)
        {
            failure = e;
            LogProtocolError(_logger, e.Code, e.Message);
            await SendGoAwayAsync(e.Code);
        }
        catch (HpackException e)
        {
            failure = e;
            LogProtocolError(_logger, Http2ErrorCode.CompressionError, e.Message);
            await SendGoAwayAsync(Http2ErrorCode.CompressionError);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or ConnectionAbortedException or OperationCanceledException or InvalidOperationException)
        {
            failure = e;
        }
        finally
        {
            ServerHeartbeat.Remove(this);
        }
        EndAll(failure ?? new IOException(_closeReason ?? "the connection ended"));
        await _allDone.Task;
        _frames.Close();
        await _input.CompleteAsync();
    }

    public void Dispose()
    {
        _frames.Dispose();
        _headerBlock.Dispose();
        _incomingBlock.Dispose();
        lock (_sync)
        {
            foreach (var stream in _reusable)
            {
                stream.Dispose();
            }
            _reusable.Clear();
        }
    }

    // ---- Reading ----

    private async Task ReadLoopAsync()
    {
        while (true)
        {
            var result = await _input.ReadAsync();
            var buffer = result.Buffer;
            try
            {
                if (!_prefaceReceived && !TryReadPreface(ref buffer))
                {
                    if (result.IsCompleted)
                    {
                        return;
                    }
                    continue;
                }
                while (TryReadFrame(ref buffer))
                {
                }
            }
            finally
            {
                _input.AdvanceTo(buffer.Start, buffer.End);
            }
            StartPending();
            if (_retired.Count > 0)
            {
                ReuseRetired();
            }
            if (result.IsCompleted || (result.IsCanceled && ShouldStop()))
            {
                return;
            }
        }
    }

    private bool ShouldStop()
    {
        lock (_sync)
        {
            return _closeReason is not null || (_draining && _active == 0);
        }
    }

    /// <summary>Takes the client preface off the front; false while only a part of it (a right one) has arrived.</summary>
    private bool TryReadPreface(ref ReadOnlySequence<byte> buffer)
    {
        var preface = Http2Frame.ClientPreface;
        Span<byte> head = stackalloc byte[(int)Math.Min(buffer.Length, preface.Length)];
        buffer.Slice(0, head.Length).CopyTo(head);
        if (!preface.StartsWith(head))
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "the connection does not begin with the HTTP/2 preface");
        }
        if (head.Length < preface.Length)
        {
            return false;
        }
        buffer = buffer.Slice(preface.Length);
        _prefaceReceived = true;
        return true;
    }

    private bool TryReadFrame(ref ReadOnlySequence<byte> buffer)
    {
        if (!Http2FrameReader.TryTake(ref buffer, out var header, out var payload))
        {
            return false;
        }
        var (length, type, flags, streamId) = header;
        if (!_settingsReceived && (type != Http2FrameType.Settings || (flags & Http2Frame.Ack) != 0))
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "the preface is not followed by SETTINGS");
        }
        if (_blockStreamId != 0 && (type != Http2FrameType.Continuation || streamId != _blockStreamId))
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "a header block was interrupted by another frame");
        }
        switch (type)
        {
            case Http2FrameType.Data:
                OnData(flags, streamId, payload);
                break;
            case Http2FrameType.Headers:
                OnHeaders(flags, streamId, payload);
                break;
            case Http2FrameType.Continuation:
                if (_blockStreamId == 0)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "a CONTINUATION frame follows no header block");
                }
                if (++_blockContinuations > Http2ServerLimits.MaxContinuations)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm, "a header block in too many CONTINUATION frames");
                }
                AppendBlock(payload, flags);
                break;
            case Http2FrameType.Priority:
                if (streamId == 0)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "PRIORITY came on stream 0");
                }
                if (length != 5)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "PRIORITY is not 5 octets");
                }
                break;
            case Http2FrameType.RstStream:
                OnReset(streamId, payload);
                break;
            case Http2FrameType.Settings:
                OnSettings(flags, streamId, payload);
                break;
            case Http2FrameType.Ping:
                OnPing(flags, streamId, payload);
                break;
            case Http2FrameType.GoAway:
                OnGoAway(streamId, payload);
                break;
            case Http2FrameType.WindowUpdate:
                OnWindowUpdate(streamId, payload);
                break;
            case Http2FrameType.PushPromise:
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "a client sent PUSH_PROMISE");
            default:
                // Unknown types are ignored (RFC 9113 5.5).
                break;
        }
        return true;
    }

    /// <summary>A stream frame's stream: null when the stream is closed; a frame for a stream never opened breaks the protocol.</summary>
    private Http2ServerStream? Find(int streamId, Http2FrameType type)
    {
        if (streamId == 0 || (streamId & 1) == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"{type} came on stream {streamId}");
        }
        if (streamId > _lastStreamId)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"{type} came on stream {streamId}, which was never opened");
        }
        lock (_sync)
        {
            return _streams.GetValueOrDefault(streamId);
        }
    }

    private void OnData(byte flags, int streamId, ReadOnlySequence<byte> payload)
    {
        var stream = Find(streamId, Http2FrameType.Data);
        var frameLength = (int)payload.Length;
        var data = Http2FrameReader.Unpad(flags, payload, 0);
        var endStream = (flags & Http2Frame.EndStream) != 0;
        string? streamError = null;
        var code = Http2ErrorCode.StreamClosed;
        lock (_sync)
        {
            // The whole frame counts against the windows, padding included (RFC 9113 6.9.1).
            _receiveWindow -= frameLength;
            if (_receiveWindow < 0)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "the peer sent past the connection's window");
            }
            if (stream is null || stream.RequestEnded)
            {
                // A stream this side closed or reset: its octets are given back at once.
                GiveBackLocked(frameLength);
                if (stream is not null)
                {
                    streamError = "DATA after the request's end";
                }
            }
            else
            {
                stream.ReceiveWindow -= frameLength;
                if (stream.ReceiveWindow < 0)
                {
                    streamError = "the peer sent past the stream's window";
                    code = Http2ErrorCode.FlowControlError;
                    GiveBackLocked(frameLength);
                }
                else
                {
                    // Padding is nobody's to consume.
                    GiveBackLocked(frameLength - (int)data.Length);
                    stream.Unconsumed += (int)data.Length;
                }
            }
        }
        if (streamError is not null)
        {
            ResetFromReader(stream!, code, streamError);
            return;
        }
        if (stream is null)
        {
            FlushGivenBack();
            return;
        }
        if (!data.IsEmpty && !stream.WriteBody(data))
        {
            ResetFromReader(stream, Http2ErrorCode.ProtocolError, "the body is longer than its content-length");
            return;
        }
        if (endStream)
        {
            EndRequest(stream);
        }
    }

    private void EndRequest(Http2ServerStream stream)
    {
        if (!stream.EndBody())
        {
            ResetFromReader(stream, Http2ErrorCode.ProtocolError, "the body is shorter than its content-length");
            return;
        }
        lock (_sync)
        {
            stream.RequestEnded = true;
            LeaveTableIfDoneLocked(stream);
        }
    }

    private void OnHeaders(byte flags, int streamId, ReadOnlySequence<byte> payload)
    {
        if (streamId == 0 || (streamId & 1) == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"HEADERS came on stream {streamId}");
        }
        var fragment = Http2FrameReader.Unpad(flags, payload, (flags & Http2Frame.PriorityFlag) != 0 ? 5 : 0);
        _blockEndsStream = (flags & Http2Frame.EndStream) != 0;
        _blockContinuations = 0;
        _blockStreamId = streamId;
        _incomingBlock.Reset();
        if (streamId > _lastStreamId)
        {
            _lastStreamId = streamId;
            _blockIsTrailers = false;
            _blockStream = OpenStream(streamId);
        }
        else
        {
            _blockIsTrailers = true;
            lock (_sync)
            {
                _blockStream = _streams.GetValueOrDefault(streamId);
            }
        }
        AppendBlock(fragment, flags);
    }

    /// <summary>A new stream's object, or null when it is refused (too many open, or the connection is closing).</summary>
    private Http2ServerStream? OpenStream(int streamId)
    {
        lock (_sync)
        {
            if (_draining || _closeReason is not null)
            {
                // Beyond the GOAWAY's last stream: not processed, and the peer knows it.
                return null;
            }
            // The peer counts a stream until it has ended both ways (RFC 9113 5.1.2), so that is the limit it is held
            // to; a handler may still be finishing after its answer's END_STREAM left (or after a reset), and those
            // are bounded apart, at twice the limit.
            if (_streams.Count < Http2ServerLimits.MaxConcurrentStreams && _active < 2 * Http2ServerLimits.MaxConcurrentStreams)
            {
                var stream = _reusable.Count > 0 ? _reusable.Pop() : new Http2ServerStream(this);
                stream.Open(streamId, _peerInitialWindow, Http2ServerLimits.StreamReceiveWindow);
                _streams.Add(streamId, stream);
                _active++;
                return stream;
            }
            _frames.Reset(streamId, Http2ErrorCode.RefusedStream);
        }
        // Written outside the lock, as every flush: other streams' senders need not wait on this write.
        FlushControl();
        return null;
    }

    private void AppendBlock(ReadOnlySequence<byte> fragment, byte flags)
    {
        if (_incomingBlock.WrittenCount + fragment.Length > Http2ServerLimits.MaxHeaderBlock)
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm, $"a header block exceeds {Http2ServerLimits.MaxHeaderBlock} octets");
        }
        if (fragment.Length > 0)
        {
            fragment.CopyTo(_incomingBlock.GetSpan((int)fragment.Length));
            _incomingBlock.Advance((int)fragment.Length);
        }
        if ((flags & Http2Frame.EndHeaders) == 0)
        {
            // From the block's first frame: CONTINUATION frames trickling in do not extend its time.
            if (Volatile.Read(ref _blockPendingSince) == 0)
            {
                Volatile.Write(ref _blockPendingSince, Environment.TickCount64);
            }
            return;
        }
        Volatile.Write(ref _blockPendingSince, 0);
        var stream = _blockStream;
        _blockStreamId = 0;
        _blockStream = null;
        bool inTable;
        lock (_sync)
        {
            inTable = stream is { InTable: true };
        }
        if (!inTable || stream is null)
        {
            // The block must still be decoded: it may change the dynamic table.
            _decoder.Skip(_incomingBlock.WrittenSpan);
            return;
        }
        stream.BeginHeaderBlock(_blockIsTrailers);
        _decoder.Decode(_incomingBlock.WrittenSpan, stream);
        if (_blockIsTrailers)
        {
            if (stream.RequestEnded)
            {
                ResetFromReader(stream, Http2ErrorCode.StreamClosed, "HEADERS after the request's end");
                return;
            }
            if (!_blockEndsStream)
            {
                ResetFromReader(stream, Http2ErrorCode.ProtocolError, "trailers came without END_STREAM");
                return;
            }
            if (stream.EndTrailers() is { } badTrailers)
            {
                ResetFromReader(stream, Http2ErrorCode.ProtocolError, badTrailers);
                return;
            }
            EndRequest(stream);
            return;
        }
        if (stream.EndRequestHead(_blockEndsStream) is { } malformed)
        {
            LogMalformed(_logger, stream.Id, malformed);
            ResetFromReader(stream, Http2ErrorCode.ProtocolError, malformed);
            // The application never saw it: the object is free at once.
            ApplicationDone(stream);
            return;
        }
        _starting.Add(stream);
    }

    /// <summary>A request whose head is beyond <see cref="RequestFieldBounds"/>: answered as Kestrel answers one over HTTP/1.1, without the application.</summary>
    private static readonly Http2RequestHandler RefuseBeyondFieldBounds = static context =>
    {
        context.Response.StatusCode = StatusCodes.Status431RequestHeaderFieldsTooLarge;
        return ValueTask.FromResult(true);
    };

    /// <summary>Starts the requests whose heads came in the last read, after all its frames (a reset in the same read is seen first).</summary>
    private void StartPending()
    {
        if (_starting.Count == 0)
        {
            return;
        }
        foreach (var stream in _starting)
        {
            if (stream.BeyondFieldBounds)
            {
                LogBeyondFieldBounds(_logger, stream.Id);
                stream.Start(RefuseBeyondFieldBounds);
                continue;
            }
            stream.Start(_application);
        }
        _starting.Clear();
    }

    private void OnReset(int streamId, ReadOnlySequence<byte> payload)
    {
        var code = Http2FrameReader.ResetCode(payload);
        var stream = Find(streamId, Http2FrameType.RstStream);
        if (stream is null)
        {
            return;
        }
        lock (_sync)
        {
            if (!stream.InTable)
            {
                return;
            }
            EndStreamLocked(stream);
        }
        stream.FailBody(new IOException("the peer reset the stream: " + code));
        stream.Abort();
    }

    private void OnSettings(byte flags, int streamId, ReadOnlySequence<byte> payload)
    {
        lock (_sync)
        {
            if (!Http2FrameReader.ReadSettings(flags, streamId, payload, this, static (connection, id, value) => connection.ApplySettingLocked(id, value)))
            {
                return;
            }
            _settingsReceived = true;
            _frames.Frame(Http2FrameType.Settings, Http2Frame.Ack, 0, []);
        }
        FlushControl();
    }

    private void ApplySettingLocked(ushort id, uint value)
    {
        switch (id)
        {
            case Http2Frame.SettingHeaderTableSize:
                _encoder.SetPeerTableSize((int)Math.Min(value, int.MaxValue));
                break;
            case Http2Frame.SettingEnablePush:
                if (value > 1)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "SETTINGS_ENABLE_PUSH is neither 0 nor 1");
                }
                break;
            case Http2Frame.SettingInitialWindowSize:
                _peerInitialWindow = Http2StreamSendWindow.ApplyInitialWindow(_streams.Values, _peerInitialWindow, value);
                break;
            case Http2Frame.SettingMaxFrameSize:
                Http2FrameReader.CheckMaxFrameSize(value);
                break;
            default:
                break;
        }
    }

    private void OnPing(byte flags, int streamId, ReadOnlySequence<byte> payload)
    {
        if (Http2FrameReader.AnswerPing(_frames, flags, streamId, payload))
        {
            FlushControl();
        }
    }

    private void OnGoAway(int streamId, ReadOnlySequence<byte> payload)
    {
        if (streamId != 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "GOAWAY came on a stream");
        }
        if (payload.Length < 8)
        {
            throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "GOAWAY is shorter than 8 octets");
        }
        // The client opens no more streams; those open finish, then the connection ends.
        Drain();
    }

    private void OnWindowUpdate(int streamId, ReadOnlySequence<byte> payload)
    {
        var increment = Http2FrameReader.WindowIncrement(payload);
        if (streamId == 0)
        {
            if (increment == 0)
            {
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "WINDOW_UPDATE of 0 on the connection");
            }
            lock (_sync)
            {
                _sendWindow += increment;
                if (_sendWindow > Http2Frame.MaxWindowSize)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "the connection's window grew past 2^31-1");
                }
                foreach (var open in _streams.Values)
                {
                    open.WakeSender();
                }
            }
            return;
        }
        var stream = Find(streamId, Http2FrameType.WindowUpdate);
        if (stream is null)
        {
            return;
        }
        if (increment == 0)
        {
            ResetFromReader(stream, Http2ErrorCode.ProtocolError, "WINDOW_UPDATE of 0");
            return;
        }
        lock (_sync)
        {
            if ((long)stream.SendWindow + increment > Http2Frame.MaxWindowSize)
            {
                EndStreamLocked(stream);
                _frames.Reset(stream.Id, Http2ErrorCode.FlowControlError);
            }
            else
            {
                stream.SendWindow += increment;
                stream.WakeSender();
                return;
            }
        }
        FlushControl();
        stream.FailBody(new IOException("the peer's window grew past 2^31-1"));
        stream.Abort();
    }

    /// <summary>The reader found a stream broken: it is reset, its body fails, its application (if running) is told.</summary>
    private void ResetFromReader(Http2ServerStream stream, Http2ErrorCode code, string reason)
    {
        lock (_sync)
        {
            if (!stream.InTable)
            {
                return;
            }
            EndStreamLocked(stream);
            _frames.Reset(stream.Id, code);
        }
        FlushControl();
        stream.FailBody(new IOException("the stream was reset: " + reason));
        // Only while the application has it: a finished stream's token must stay fresh for the object's next stream.
        stream.Abort();
    }

    /// <summary>Control frames (acknowledgements, resets, window) go out; a peer that leaves too much of them unread is cut.</summary>
    private void FlushControl()
    {
        if (_frames.QueuedOctets > Http2ServerLimits.MaxUnreadOutput)
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm, "the peer does not read what it provokes");
        }
        _frames.Flush();
    }

    // ---- Streams ending ----

    /// <summary>Under the lock: the stream leaves the table both ways, and its sender stops waiting.</summary>
    private void EndStreamLocked(Http2ServerStream stream)
    {
        stream.RequestEnded = true;
        stream.ResponseEnded = true;
        stream.WakeSender();
        RemoveLocked(stream);
    }

    private void LeaveTableIfDoneLocked(Http2ServerStream stream)
    {
        if (stream.RequestEnded && stream.ResponseEnded)
        {
            RemoveLocked(stream);
        }
    }

    private void RemoveLocked(Http2ServerStream stream)
    {
        if (stream.InTable)
        {
            stream.InTable = false;
            _streams.Remove(stream.Id);
        }
    }

    /// <summary>
    /// The application is done with the stream (or never ran it): an upload the answer did not wait for is stopped
    /// (RST_STREAM NO_ERROR, RFC 9113 8.1), and the object waits for the reader to take it back.
    /// </summary>
    internal void ApplicationDone(Http2ServerStream stream)
    {
        var reset = false;
        bool last;
        lock (_sync)
        {
            if (stream.InTable)
            {
                _frames.Reset(stream.Id, stream.ResponseEnded ? Http2ErrorCode.NoError : Http2ErrorCode.InternalError);
                EndStreamLocked(stream);
                reset = true;
            }
            if (_retired.Count < MaxKeptStreams)
            {
                _retired.Add(stream);
            }
            _active--;
            if (_active == 0)
            {
                Volatile.Write(ref _idleSince, Environment.TickCount64);
            }
            last = _active == 0 && (_readerEnded || _draining);
        }
        if (reset)
        {
            _frames.Flush();
        }
        if (last)
        {
            if (Volatile.Read(ref _readerEnded))
            {
                _allDone.TrySetResult();
            }
            else
            {
                _input.CancelPendingRead();
            }
        }
    }

    /// <summary>On the reader, between reads: objects their applications released and that left the table serve again.</summary>
    private void ReuseRetired()
    {
        lock (_sync)
        {
            for (var i = _retired.Count - 1; i >= 0; i--)
            {
                var stream = _retired[i];
                if (stream.InTable || ReferenceEquals(stream, _blockStream))
                {
                    continue;
                }
                _retired.RemoveAt(i);
                GiveBackLocked(stream.Unconsumed);
                stream.Unconsumed = 0;
                stream.Recycle();
                if (_reusable.Count < MaxKeptStreams)
                {
                    _reusable.Push(stream);
                }
            }
        }
        FlushGivenBack();
    }

    /// <summary>After the reader's end: every stream is told, and the run ends once their applications are done.</summary>
    private void EndAll(Exception reason)
    {
        List<Http2ServerStream> open;
        lock (_sync)
        {
            _readerEnded = true;
            _closeReason ??= reason.Message;
            open = [.. _streams.Values];
            foreach (var stream in open)
            {
                EndStreamLocked(stream);
            }
            if (_active == 0)
            {
                _allDone.TrySetResult();
            }
        }
        _frames.Close();
        foreach (var stream in open)
        {
            stream.FailBody(new IOException("the connection ended: " + reason.Message, reason));
            stream.Abort();
        }
    }

    // ---- Closing ----

    /// <summary>Graceful end (host shutdown, the peer's GOAWAY, an idle connection): no new streams, the open ones finish.</summary>
    internal void Drain()
    {
        bool stopNow;
        lock (_sync)
        {
            if (_draining || _readerEnded)
            {
                return;
            }
            _draining = true;
            _frames.Frame(Http2FrameType.GoAway, 0, 0, Http2Frame.GoAwayPayload(_lastStreamId, Http2ErrorCode.NoError));
            stopNow = _active == 0;
        }
        _frames.Flush();
        if (stopNow)
        {
            _input.CancelPendingRead();
        }
    }

    /// <summary>The heartbeat's check: a preface or header block overdue cuts the connection, a long idle one is ended.</summary>
    public void Tick(long now)
    {
        var timeout = (long)_limits.HeadersTimeout.TotalMilliseconds;
        var blockSince = Volatile.Read(ref _blockPendingSince);
        if (!Volatile.Read(ref _settingsReceived) ? now - _openedAt > timeout : blockSince != 0 && now - blockSince > timeout)
        {
            Abort(_settingsReceived ? "a header block was not finished in time" : "no preface in time");
            return;
        }
        bool idle;
        lock (_sync)
        {
            idle = _active == 0 && !_draining;
        }
        if (idle && now - Volatile.Read(ref _idleSince) > (long)_limits.KeepAliveTimeout.TotalMilliseconds)
        {
            Drain();
        }
    }

    private void Abort(string reason)
    {
        lock (_sync)
        {
            _closeReason ??= reason;
        }
        _connection.Abort(new ConnectionAbortedException(reason));
        _input.CancelPendingRead();
    }

    private Task SendGoAwayAsync(Http2ErrorCode code) => _frames.WriteLastAsync(Http2FrameType.GoAway, Http2Frame.GoAwayPayload(_lastStreamId, code));

    // ---- Writing ----

    private void QueueSettings()
    {
        Span<byte> settings = stackalloc byte[24];
        Http2Frame.WriteSetting(settings, Http2Frame.SettingMaxConcurrentStreams, Http2ServerLimits.MaxConcurrentStreams);
        Http2Frame.WriteSetting(settings[6..], Http2Frame.SettingInitialWindowSize, Http2ServerLimits.StreamReceiveWindow);
        Http2Frame.WriteSetting(settings[12..], Http2Frame.SettingMaxHeaderListSize, Http2ServerLimits.MaxHeaderBlock);
        Http2Frame.WriteSetting(settings[18..], Http2Frame.SettingEnableConnectProtocol, 1);
        _frames.Frame(Http2FrameType.Settings, 0, 0, settings);
        _frames.WindowUpdate(0, Http2ServerLimits.ConnectionReceiveWindow - Http2Frame.DefaultWindowSize);
    }

    /// <summary>Under the lock: consumed or dropped body octets count towards the connection's next WINDOW_UPDATE.</summary>
    private void GiveBackLocked(int octets)
    {
        if (octets <= 0)
        {
            return;
        }
        _receiveUnacked += octets;
        if (_receiveUnacked >= Http2ServerLimits.ConnectionReceiveWindow / 4)
        {
            _frames.WindowUpdate(0, _receiveUnacked);
            _receiveWindow += _receiveUnacked;
            _receiveUnacked = 0;
            _windowQueued = true;
        }
    }

    private bool _windowQueued;

    private void FlushGivenBack()
    {
        bool queued;
        lock (_sync)
        {
            queued = _windowQueued;
            _windowQueued = false;
        }
        if (queued)
        {
            _frames.Flush();
        }
    }

    /// <summary>The application consumed body octets: window goes back, the stream's when half of it is used.</summary>
    internal void ReturnWindow(Http2ServerStream stream, int octets)
    {
        lock (_sync)
        {
            stream.Unconsumed -= octets;
            GiveBackLocked(octets);
            if (stream.InTable && !stream.RequestEnded)
            {
                stream.UnackedWindow += octets;
                if (stream.UnackedWindow >= Http2ServerLimits.StreamReceiveWindow / 2)
                {
                    _frames.WindowUpdate(stream.Id, stream.UnackedWindow);
                    stream.ReceiveWindow += stream.UnackedWindow;
                    stream.UnackedWindow = 0;
                    _windowQueued = true;
                }
            }
        }
        FlushGivenBack();
    }

    /// <summary>
    /// Sends the answer's head (the first time) and <paramref name="data"/> as DATA frames within the peer's windows,
    /// waiting for window as needed; false when the stream was reset (nothing more may be sent).
    /// </summary>
    internal async ValueTask<bool> SendAsync(Http2ServerStream stream, ReadOnlyMemory<byte> data, bool endStream, CancellationToken cancellation)
    {
        while (true)
        {
            Task? waitForWindow = null;
            lock (_sync)
            {
                if (stream.ResponseEnded)
                {
                    return false;
                }
                if (!stream.HeadersSent)
                {
                    stream.HeadersSent = true;
                    var headOnly = endStream && data.IsEmpty;
                    WriteFieldsLocked(stream, stream.ResponseHeaders, Http2ServerStream.StatusText(stream.StatusCode), headOnly);
                    if (headOnly)
                    {
                        EndResponseLocked(stream);
                    }
                }
                else if (data.IsEmpty && endStream)
                {
                    _frames.Frame(Http2FrameType.Data, Http2Frame.EndStream, stream.Id, []);
                    EndResponseLocked(stream);
                }
                if (!FrameDataLocked(stream, ref data, endStream))
                {
                    stream.WindowWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    waitForWindow = stream.WindowWaiter.Task;
                }
            }
            if (waitForWindow is null && data.IsEmpty && endStream && Volatile.Read(ref _active) > 1)
            {
                // An answer's last frames, with other streams in flight: a write a moment later carries the answers
                // that end meanwhile too (one send, and one receive and wake-up for the peer, for several answers).
                _frames.FlushSoon();
                return true;
            }
            // Waits while another write is under way and the queue is past its high water: what is left of the data
            // (FrameDataLocked stopped there) is framed once the queue was taken.
            await _frames.FlushAsync();
            if (waitForWindow is null)
            {
                if (data.IsEmpty)
                {
                    return true;
                }
                continue;
            }
            await waitForWindow.WaitAsync(cancellation);
        }
    }

    /// <summary>
    /// Under the lock: <paramref name="data"/> as DATA frames, as far as the stream's and the connection's windows
    /// allow, END_STREAM on the last when <paramref name="endStream"/>; false when a window stopped it (what is left
    /// stays in <paramref name="data"/>). With <paramref name="toHighWater"/>, it stops too (true, the rest in
    /// <paramref name="data"/>) once the connection's queue holds <see cref="Http2FrameQueue.HighWater"/> octets: answers
    /// sending at once then hold the queue near that mark (each adds a frame at most past it), where each added its
    /// whole flush (64 KiB) and a burst of 1 MiB downloads grew it, and the pool's arrays, to a MiB.
    /// </summary>
    private bool FrameDataLocked(Http2ServerStream stream, ref ReadOnlyMemory<byte> data, bool endStream, bool toHighWater = true)
    {
        while (!data.IsEmpty)
        {
            if (!stream.TryFrameData(_frames, stream.Id, ref data, endStream, Http2Frame.DefaultMaxFrameSize, ref _sendWindow, out var last))
            {
                return false;
            }
            if (last)
            {
                EndResponseLocked(stream);
            }
            else if (toHighWater && !data.IsEmpty && _frames.QueuedOctets >= Http2FrameQueue.HighWater)
            {
                return true;
            }
        }
        return true;
    }

    /// <summary>Under the lock: this side's END_STREAM is queued.</summary>
    private void EndResponseLocked(Http2ServerStream stream)
    {
        stream.ResponseEnded = true;
        LeaveTableIfDoneLocked(stream);
    }

    internal void SendTrailers(Http2ServerStream stream)
    {
        lock (_sync)
        {
            if (stream.ResponseEnded || stream.ResponseTrailers is not { } trailers)
            {
                return;
            }
            WriteFieldsLocked(stream, trailers, status: null, endStream: true);
            EndResponseLocked(stream);
        }
        FlushEnded();
    }

    /// <summary>
    /// The end of an answer with trailers in one write: its head (if not sent yet), the body's last octets and the
    /// trailers, queued under one lock and flushed once (a gRPC answer was two sends, and two receives for the peer).
    /// False, with nothing queued, when the last octets do not fit the windows: the caller then sends them the usual way.
    /// </summary>
    internal bool TrySendLast(Http2ServerStream stream, ReadOnlyMemory<byte> data)
    {
        lock (_sync)
        {
            if (stream.ResponseEnded)
            {
                return true;
            }
            if (stream.ResponseTrailers is not { } trailers || data.Length > Math.Min(stream.SendWindow, _sendWindow))
            {
                return false;
            }
            if (!stream.HeadersSent)
            {
                stream.HeadersSent = true;
                WriteFieldsLocked(stream, stream.ResponseHeaders, Http2ServerStream.StatusText(stream.StatusCode), endStream: false);
            }
            FrameDataLocked(stream, ref data, endStream: false, toHighWater: false);
            WriteFieldsLocked(stream, trailers, status: null, endStream: true);
            EndResponseLocked(stream);
        }
        FlushEnded();
        return true;
    }

    /// <summary>An answer's last frames are queued: with other streams in flight a write a moment later carries theirs too.</summary>
    private void FlushEnded()
    {
        if (Volatile.Read(ref _active) > 1)
        {
            _frames.FlushSoon();
        }
        else
        {
            _frames.Flush();
        }
    }

    internal void SendContinue(Http2ServerStream stream)
    {
        lock (_sync)
        {
            if (stream.ResponseEnded || stream.HeadersSent)
            {
                return;
            }
            _headerBlock.Reset();
            _encoder.BeginBlock(_headerBlock);
            _encoder.WriteField(_headerBlock, ":status", "100", HpackIndexing.Index);
            _frames.Headers(stream.Id, _headerBlock.WrittenSpan, endStream: false, Http2Frame.DefaultMaxFrameSize);
        }
        _frames.Flush();
    }

    /// <summary>Under the lock (HPACK's order is the frames' order): a head or trailers as one header block.</summary>
    private void WriteFieldsLocked(Http2ServerStream stream, FieldList fields, string? status, bool endStream)
    {
        _headerBlock.Reset();
        _encoder.BeginBlock(_headerBlock);
        if (status is not null)
        {
            _encoder.WriteField(_headerBlock, ":status", status, HpackIndexing.Index);
        }
        foreach (var field in fields)
        {
            if (Http2FieldRules.IsConnectionSpecific(field.Key))
            {
                continue;
            }
            var indexing = string.Equals(field.Key, "set-cookie", StringComparison.OrdinalIgnoreCase) ? HpackIndexing.NeverIndex : HpackIndexing.Index;
            foreach (var value in field.Value)
            {
                if (value is not null && HpackEncoder.IsSendable(value))
                {
                    _encoder.WriteField(_headerBlock, field.Key, value, value.Length > 256 ? HpackIndexing.NoIndex : indexing);
                }
            }
        }
        _frames.Headers(stream.Id, _headerBlock.WrittenSpan, endStream, Http2Frame.DefaultMaxFrameSize);
    }

    /// <summary>Resets the stream from the application's side (an abort, a failure, a reset it asked for).</summary>
    internal void ResetStream(Http2ServerStream stream, Http2ErrorCode code)
    {
        lock (_sync)
        {
            if (!stream.InTable)
            {
                return;
            }
            EndStreamLocked(stream);
            _frames.Reset(stream.Id, code);
        }
        _frames.Flush();
        stream.Abort();
    }


    internal void LogApplicationFailed(int streamId, Exception e) => LogAppFailed(_logger, streamId, e.Message);

    [LoggerMessage(EventId = 340, Level = LogLevel.Warning, Message = "inbound http/2: the request on stream {StreamId} failed: {Reason}")]
    private static partial void LogAppFailed(ILogger logger, int streamId, string reason);

    [LoggerMessage(EventId = 341, Level = LogLevel.Information, Message = "inbound http/2: the peer broke the protocol ({Code}): {Reason}")]
    private static partial void LogProtocolError(ILogger logger, Http2ErrorCode code, string reason);

    [LoggerMessage(EventId = 342, Level = LogLevel.Debug, Message = "inbound http/2: stream {StreamId} reset, its request is malformed: {Reason}")]
    private static partial void LogMalformed(ILogger logger, int streamId, string reason);

    [LoggerMessage(EventId = 343, Level = LogLevel.Debug, Message = "inbound http/2: stream {StreamId} answered 431, its request holds more fields than the bounds allow")]
    private static partial void LogBeyondFieldBounds(ILogger logger, int streamId);
}
