using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using MeshGuard.FlowLog;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// A client HTTP/2 connection over a stream that is already secured (RFC 9113), many requests multiplexed on it.
/// <para>
/// Writing goes through <see cref="Http2FrameQueue"/>: frames are queued in order under this connection's lock, and
/// whoever finds no write under way does the writing, so a lone request costs one transport write for its head (and
/// the first body octets, when it has them at hand) and streams under load share writes.
/// </para>
/// <para>
/// Reading: one loop reads frames, decodes header blocks in order (HPACK is one state per connection), and puts each
/// stream's body into that stream's pipe. Flow control both ways: the peer's windows are waited for before data is
/// queued; this side's stream windows are given back as the request's task reads and enforced on the peer, so a slow
/// reader holds at most <see cref="StreamReceiveWindow"/> octets.
/// </para>
/// </summary>
internal sealed class Http2ClientConnection : IAsyncDisposable
{
    public const int StreamReceiveWindow = 256 * 1024;
    public const int ConnectionReceiveWindow = 4 * 1024 * 1024;
    private const int MaxHeaderBlock = HpackDecoder.DefaultMaxFieldListSize;
    private static readonly TimeSpan SettingsTimeout = TimeSpan.FromSeconds(10);

    private readonly Stream _transport;
    private readonly PipeReader _input;
    private readonly Lock _sync = new();
    private readonly Dictionary<int, Http2ClientStream> _streams = [];
    // Stream objects their requests released, until the reader finds them out of the table between frames, and those
    // ready for a new stream (both guarded by _sync, both bounded: past the bound an object is left to the collector).
    private readonly List<Http2ClientStream> _retired = [];
    private readonly Stack<Http2ClientStream> _reusable = new();
    // Streams whose final head came in the read being handled: settled by the reader once it has handled all of it
    // (before ReuseRetired, so none of them can have been reused meanwhile).
    private readonly List<Http2ClientStream> _headsReceived = [];
    private const int MaxKeptStreams = 128;
    private readonly HpackEncoder _encoder = new();
    private readonly HpackDecoder _decoder = new();
    private readonly PooledBufferWriter _headerBlock = new();
    private readonly PooledBufferWriter _incomingBlock = new();
    private readonly TaskCompletionSource _settingsReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Http2FrameQueue _frames;
    private int _nextStreamId = 1;
    private int _maxConcurrentStreams = 100;
    private int _peerInitialWindow = Http2Frame.DefaultWindowSize;
    private long _sendWindow = Http2Frame.DefaultWindowSize;
    private int _peerMaxFrameSize = Http2Frame.DefaultMaxFrameSize;
    private int _receivedUnacked;
    private int _goAwayLastStream = int.MaxValue;
    private Exception? _closed;
    private Task _reading = Task.CompletedTask;

    // The header block being received: its stream (null when the stream is gone) and whether END_STREAM came with it.
    private int _blockStreamId;
    private Http2ClientStream? _blockStream;
    private bool _blockEndsStream;

    private Http2ClientConnection(Stream transport, Action<IThreadPoolWorkItem>? startSoon)
    {
        _transport = transport;
        _frames = new Http2FrameQueue(transport, Abort, startSoon);
        _input = PipeReader.Create(transport, new StreamPipeReaderOptions(bufferSize: 32 * 1024, minimumReadSize: 4096, leaveOpen: true));
    }

    /// <summary>Streams open now.</summary>
    public int ActiveStreams
    {
        get
        {
            lock (_sync)
            {
                return _streams.Count;
            }
        }
    }

    /// <summary>The connection takes no new stream: it failed, the peer sent GOAWAY, or it refused a stream to calm this side down.</summary>
    public bool IsClosing => Volatile.Read(ref _closed) is not null || Volatile.Read(ref _goAwayLastStream) != int.MaxValue || _peerOverloaded;

    // The peer refused a new stream with ENHANCE_YOUR_CALM: it still counts streams this side reset as its own work.
    // Kestrel keeps counting a stream whose handler runs on after the client's reset and, past twice its stream limit,
    // refuses each new stream so, and ends the whole connection (every stream on it) after a hundred in five seconds.
    // A caller that cancels requests an app goes on working on would bring that about on a connection the sidecar
    // shares among callers: the connection takes no new stream from then on (its streams go on), and the pool opens another.
    private volatile bool _peerOverloaded;

    /// <summary>When the last stream ended (or the connection opened); for idle trimming.</summary>
    public long IdleSince { get; private set; } = Environment.TickCount64;

    /// <summary>
    /// Sends the preface and this side's settings, and waits for the peer's settings. <paramref name="startSoon"/>: where
    /// a write left to a moment later starts (<see cref="Http2FrameQueue"/>; a test's hand, else the engine's turn).
    /// </summary>
    public static async Task<Http2ClientConnection> OpenAsync(Stream transport, CancellationToken cancellation, Action<IThreadPoolWorkItem>? startSoon = null)
    {
        var connection = new Http2ClientConnection(transport, startSoon);
        connection.QueuePreface();
        await connection._frames.FlushAsync();
        connection._reading = connection.ReadLoopAsync();
        try
        {
            await connection._settingsReceived.Task.WaitAsync(SettingsTimeout, cancellation);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
        return connection;
    }

    /// <summary>
    /// Opens a stream and queues the header block <paramref name="writeFields"/> writes (its values checked sendable
    /// beforehand: the encoder's table must never hold half a block), with END_STREAM when <paramref name="endStream"/>; null when the
    /// connection has no room (the peer's stream limit) or takes no new streams. The frames are written at once unless
    /// <paramref name="moreToCome"/>: then the caller's first <see cref="Http2ClientStream.SendDataAsync"/> writes them.
    /// </summary>
    public Http2ClientStream? TryOpenStream<TState>(Action<TState, HpackEncoder, IBufferWriter<byte>> writeFields, TState state, bool endStream, bool moreToCome)
    {
        Http2ClientStream stream;
        bool othersInFlight;
        lock (_sync)
        {
            if (_closed is not null || _streams.Count >= _maxConcurrentStreams || _nextStreamId > _goAwayLastStream || _nextStreamId < 0 || _peerOverloaded)
            {
                return null;
            }
            othersInFlight = _streams.Count > 0;
            stream = _reusable.Count > 0 ? _reusable.Pop() : new Http2ClientStream(this);
            stream.Open(_nextStreamId, _peerInitialWindow);
            _nextStreamId += 2;
            _streams.Add(stream.Id, stream);
            stream.RequestEnded = endStream;
            _headerBlock.Reset();
            _encoder.BeginBlock(_headerBlock);
            writeFields(state, _encoder, _headerBlock);
            _frames.Headers(stream.Id, _headerBlock.WrittenSpan, endStream, _peerMaxFrameSize);
        }
        if (!moreToCome)
        {
            // A lone request goes out at once; with others in flight, their heads and ends share the write.
            if (othersInFlight)
            {
                _frames.FlushSoon();
            }
            else
            {
                _frames.Flush();
            }
        }
        return stream;
    }

    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    internal async ValueTask SendDataAsync(Http2ClientStream stream, ReadOnlyMemory<byte> data, bool endStream, CancellationToken cancellation)
    {
        while (true)
        {
            Task? waitForWindow = null;
            var shareWrite = false;
            lock (_sync)
            {
                if (stream.Failure is { } failure)
                {
                    throw failure;
                }
                if (stream.RequestEnded)
                {
                    throw new InvalidOperationException("the request already ended");
                }
                if (stream.TryFrameData(_frames, stream.Id, ref data, endStream, _peerMaxFrameSize, ref _sendWindow, out var last))
                {
                    if (last)
                    {
                        stream.RequestEnded = true;
                        shareWrite = _streams.Count > 1; // this stream is still in the table: others besides it
                        CloseIfDone(stream);
                    }
                }
                else
                {
                    // Woken (and cleared) by WINDOW_UPDATE, a larger initial window, or the stream's end.
                    stream.WindowWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    waitForWindow = stream.WindowWaiter.Task;
                }
            }
            if (shareWrite)
            {
                // The request's end (for a small body, its head and all of it) with other streams in flight: their
                // frames share the write, as a request without a body does (TryOpenStream). Written at once, every gRPC
                // call cost the sender a send of its own and the peer a receive.
                _frames.FlushSoon();
                return;
            }
            await _frames.FlushAsync();
            if (waitForWindow is not null)
            {
                await waitForWindow.WaitAsync(cancellation);
                continue;
            }
            if (data.IsEmpty)
            {
                return;
            }
        }
    }

    internal void ReturnWindow(Http2ClientStream stream, int octets)
    {
        lock (_sync)
        {
            if (stream.ResponseEnded || stream.Failure is not null || !_streams.ContainsKey(stream.Id))
            {
                return;
            }
            _frames.WindowUpdate(stream.Id, octets);
            stream.ReceiveWindow += octets;
        }
        _frames.Flush();
    }

    internal void ResetStream(Http2ClientStream stream, Http2ErrorCode code)
    {
        Http2StreamException failure;
        lock (_sync)
        {
            failure = stream.Failure ??= new Http2StreamException(code, "the stream was reset by this side");
            stream.WakeSender();
            if (_streams.Remove(stream.Id))
            {
                _frames.Reset(stream.Id, code);
                IdleSince = Environment.TickCount64;
            }
        }
        if (!stream.ResponseEnded)
        {
            stream.Interrupt(failure);
        }
        _frames.Flush();
    }

    internal Http2StreamException? FailureOf(Http2ClientStream stream)
    {
        lock (_sync)
        {
            return stream.Failure;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Abort(new IOException("the connection was closed by this side"));
        try
        {
            await _reading;
        }
        catch
        {
            // The reader's end is the connection's end; its reason reached the streams.
        }
        _headerBlock.Dispose();
        _incomingBlock.Dispose();
        _frames.Dispose();
    }

    /// <summary>Closes the transport; the reader then ends every open stream.</summary>
    private void Abort(Exception reason)
    {
        lock (_sync)
        {
            _closed ??= reason;
        }
        _frames.Close();
        _transport.Dispose();
    }

    // ---- Writing ----

    private void QueuePreface()
    {
        _frames.Raw(Http2Frame.ClientPreface);
        Span<byte> settings = stackalloc byte[18];
        Http2Frame.WriteSetting(settings, Http2Frame.SettingEnablePush, 0);
        Http2Frame.WriteSetting(settings[6..], Http2Frame.SettingInitialWindowSize, StreamReceiveWindow);
        Http2Frame.WriteSetting(settings[12..], Http2Frame.SettingMaxHeaderListSize, MaxHeaderBlock);
        _frames.Frame(Http2FrameType.Settings, 0, 0, settings);
        _frames.WindowUpdate(0, ConnectionReceiveWindow - Http2Frame.DefaultWindowSize);
    }

    // ---- Reading ----

    private async Task ReadLoopAsync()
    {
        Exception? failure = null;
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync();
                var buffer = result.Buffer;
                while (TryReadFrame(ref buffer))
                {
                }
                if (_headsReceived.Count > 0)
                {
                    SettleReceivedHeads();
                }
                if (_retired.Count > 0)
                {
                    ReuseRetired();
                }
                if (result.IsCompleted)
                {
                    throw new IOException(buffer.IsEmpty ? "the peer closed the connection" : "the peer closed the connection inside a frame");
                }
                _input.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        catch (Http2ConnectionException e)
        {
            failure = e;
            await SendGoAwayAsync(e.Code);
        }
        catch (HpackException e)
        {
            failure = e;
            await SendGoAwayAsync(Http2ErrorCode.CompressionError);
        }
        catch (Exception e)
        {
            failure = e;
        }
        finally
        {
            Abort(failure ?? new IOException("the connection ended"));
            _input.Complete();
            FailAll(failure);
        }
    }

    private void SettleReceivedHeads()
    {
        // By index: a request's task taken on here may open a stream, never add to this list (only the reader does).
        for (var i = 0; i < _headsReceived.Count; i++)
        {
            _headsReceived[i].SettleReceivedHead();
        }
        _headsReceived.Clear();
    }

    /// <summary>Tells the peer why the connection ends, after the write under way if there is one.</summary>
    private Task SendGoAwayAsync(Http2ErrorCode code) => _frames.WriteLastAsync(Http2FrameType.GoAway, Http2Frame.GoAwayPayload(0, code));

    private void FailAll(Exception? reason)
    {
        List<Http2ClientStream> open;
        lock (_sync)
        {
            open = [.. _streams.Values];
            _streams.Clear();
        }
        foreach (var stream in open)
        {
            var failure = new Http2StreamException(Http2ErrorCode.ConnectError, "the connection to the peer ended: " + (reason?.Message ?? "closed"), inner: reason);
            lock (_sync)
            {
                stream.Failure ??= failure;
                stream.WakeSender();
            }
            stream.Fail(failure);
        }
        _settingsReceived.TrySetException(reason ?? new IOException("the connection ended before the peer's settings"));
    }

    private bool TryReadFrame(ref ReadOnlySequence<byte> buffer)
    {
        if (!Http2FrameReader.TryTake(ref buffer, out var header, out var payload))
        {
            return false;
        }
        var (_, type, flags, streamId) = header;
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
                AppendBlock(payload, flags);
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
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "the peer pushed, and this side disabled push");
            default:
                // PRIORITY and unknown types are ignored (RFC 9113 5.5).
                break;
        }
        return true;
    }

    /// <summary>A stream object whose request released it (see <see cref="ReuseRetired"/>).</summary>
    internal void Retire(Http2ClientStream stream)
    {
        lock (_sync)
        {
            if (_retired.Count < MaxKeptStreams)
            {
                _retired.Add(stream);
            }
        }
    }

    /// <summary>
    /// On the reader, between frames: released stream objects that have left the table become reusable. Only the reader
    /// holds a stream past the table's lock (while it handles one frame, or a header block across frames), so once a
    /// stream is out of the table and the reader is here, no frame that came for it can reach the object any more.
    /// </summary>
    private void ReuseRetired()
    {
        lock (_sync)
        {
            for (var i = _retired.Count - 1; i >= 0; i--)
            {
                var stream = _retired[i];
                if (ReferenceEquals(stream, _blockStream) || (_streams.TryGetValue(stream.Id, out var open) && ReferenceEquals(open, stream)))
                {
                    continue;
                }
                _retired[i] = _retired[^1];
                _retired.RemoveAt(_retired.Count - 1);
                if (_reusable.Count < MaxKeptStreams)
                {
                    _reusable.Push(stream);
                }
            }
        }
    }

    private Http2ClientStream? Find(int streamId)
    {
        if (streamId == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "a stream frame came on stream 0");
        }
        lock (_sync)
        {
            if ((streamId & 1) == 0 || streamId >= _nextStreamId)
            {
                // Even ids would be pushed streams; ids above those opened were never opened by this side.
                throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, $"a frame came on stream {streamId}, which this side never opened");
            }
            return _streams.GetValueOrDefault(streamId);
        }
    }

    private void OnData(byte flags, int streamId, ReadOnlySequence<byte> payload)
    {
        var stream = Find(streamId);
        var frameLength = (int)payload.Length;
        var data = Http2FrameReader.Unpad(flags, payload, 0);
        var overrun = false;
        var returned = false;
        lock (_sync)
        {
            if (stream is not null)
            {
                stream.ReceiveWindow -= frameLength;
                overrun = stream.ReceiveWindow < 0;
            }
            // The whole frame counts against the windows, padding included (RFC 9113 6.9.1).
            _receivedUnacked += frameLength;
            if (_receivedUnacked > ConnectionReceiveWindow)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "the peer sent past the connection's window");
            }
            if (_receivedUnacked >= ConnectionReceiveWindow / 2)
            {
                _frames.WindowUpdate(0, _receivedUnacked);
                _receivedUnacked = 0;
                returned = true;
            }
        }
        if (returned)
        {
            _frames.Flush();
        }
        if (stream is null)
        {
            return;
        }
        if (overrun)
        {
            ResetFromReader(stream, Http2ErrorCode.FlowControlError, "the peer sent past the stream's window");
            return;
        }
        if (!stream.HeadReceived || stream.ResponseEnded)
        {
            ResetFromReader(stream, Http2ErrorCode.ProtocolError, "DATA came before the answer's head or after its end");
            return;
        }
        if (frameLength > 0)
        {
            stream.WriteBody(data);
        }
        if ((flags & Http2Frame.EndStream) != 0)
        {
            EndResponse(stream);
        }
    }

    private void OnHeaders(byte flags, int streamId, ReadOnlySequence<byte> payload)
    {
        var stream = Find(streamId);
        var fragment = Http2FrameReader.Unpad(flags, payload, (flags & Http2Frame.PriorityFlag) != 0 ? 5 : 0);
        _blockStreamId = streamId;
        _blockStream = stream;
        _blockEndsStream = (flags & Http2Frame.EndStream) != 0;
        _incomingBlock.Reset();
        AppendBlock(fragment, flags);
    }

    private void AppendBlock(ReadOnlySequence<byte> fragment, byte flags)
    {
        if (_incomingBlock.WrittenCount + fragment.Length > MaxHeaderBlock)
        {
            throw new Http2ConnectionException(Http2ErrorCode.EnhanceYourCalm, $"a header block exceeds {MaxHeaderBlock} octets");
        }
        fragment.CopyTo(_incomingBlock.GetSpan((int)fragment.Length));
        _incomingBlock.Advance((int)fragment.Length);
        if ((flags & Http2Frame.EndHeaders) == 0)
        {
            return;
        }
        var stream = _blockStream;
        _blockStreamId = 0;
        _blockStream = null;
        if (stream is null || stream.ResponseEnded)
        {
            // The block must still be decoded: it may change the dynamic table.
            _decoder.Skip(_incomingBlock.WrittenSpan);
            return;
        }
        var trailers = stream.HeadReceived;
        stream.BeginHeaderBlock();
        _decoder.Decode(_incomingBlock.WrittenSpan, stream);
        var final = stream.EndHeaderBlock();
        if (final)
        {
            _headsReceived.Add(stream);
        }
        if (trailers && !_blockEndsStream)
        {
            ResetFromReader(stream, Http2ErrorCode.ProtocolError, "trailers came without END_STREAM");
            return;
        }
        if (!final && !trailers && _blockEndsStream)
        {
            ResetFromReader(stream, Http2ErrorCode.ProtocolError, "an informational answer ended the stream");
            return;
        }
        if (_blockEndsStream)
        {
            EndResponse(stream);
        }
    }

    private void EndResponse(Http2ClientStream stream)
    {
        lock (_sync)
        {
            stream.ResponseEnded = true;
            CloseIfDone(stream);
        }
        stream.EndBody();
    }

    /// <summary>Under the lock: a stream that ended both ways leaves the table.</summary>
    private void CloseIfDone(Http2ClientStream stream)
    {
        if (stream.RequestEnded && stream.ResponseEnded && _streams.Remove(stream.Id))
        {
            IdleSince = Environment.TickCount64;
        }
    }

    /// <summary>The reader found the peer's answer on one stream malformed: that stream is reset, the others go on.</summary>
    private void ResetFromReader(Http2ClientStream stream, Http2ErrorCode code, string reason)
    {
        var failure = new Http2StreamException(code, "the peer's answer is malformed: " + reason);
        lock (_sync)
        {
            stream.Failure ??= failure;
        }
        ResetStream(stream, code);
        stream.Fail(failure);
    }

    private void OnReset(int streamId, ReadOnlySequence<byte> payload)
    {
        var error = Http2FrameReader.ResetCode(payload);
        var stream = Find(streamId);
        if (stream is null)
        {
            return;
        }
        if (error == Http2ErrorCode.EnhanceYourCalm)
        {
            _peerOverloaded = true;
        }
        var failure = new Http2StreamException(error, "the peer reset the stream: " + error, notProcessed: error == Http2ErrorCode.RefusedStream);
        lock (_sync)
        {
            _streams.Remove(streamId);
            IdleSince = Environment.TickCount64;
            stream.Failure ??= failure;
            stream.WakeSender();
        }
        if (stream.ResponseEnded)
        {
            // The whole answer came (RST NO_ERROR asks the rest of the request to stop, RFC 9113 8.1): nothing to fail.
            return;
        }
        stream.Fail(failure);
    }

    private void OnSettings(byte flags, int streamId, ReadOnlySequence<byte> payload)
    {
        lock (_sync)
        {
            if (!Http2FrameReader.ReadSettings(flags, streamId, payload, this, static (connection, id, value) => connection.ApplySetting(id, value)))
            {
                return;
            }
            _frames.Frame(Http2FrameType.Settings, Http2Frame.Ack, 0, []);
        }
        _frames.Flush();
        _settingsReceived.TrySetResult();
    }

    /// <summary>Under the lock.</summary>
    private void ApplySetting(ushort id, uint value)
    {
        switch (id)
        {
            case Http2Frame.SettingHeaderTableSize:
                _encoder.SetPeerTableSize((int)Math.Min(value, int.MaxValue));
                break;
            case Http2Frame.SettingMaxConcurrentStreams:
                _maxConcurrentStreams = (int)Math.Min(value, int.MaxValue);
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
            _frames.Flush();
        }
    }

    private void OnGoAway(int streamId, ReadOnlySequence<byte> payload)
    {
        if (streamId != 0 || payload.Length < 8)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "GOAWAY is malformed");
        }
        Span<byte> head = stackalloc byte[8];
        payload.Slice(0, 8).CopyTo(head);
        var last = BinaryPrimitives.ReadInt32BigEndian(head) & int.MaxValue;
        var code = (Http2ErrorCode)BinaryPrimitives.ReadUInt32BigEndian(head[4..]);
        List<Http2ClientStream> refused = [];
        lock (_sync)
        {
            _goAwayLastStream = Math.Min(_goAwayLastStream, last);
            foreach (var stream in _streams.Values)
            {
                if (stream.Id > last)
                {
                    refused.Add(stream);
                }
            }
            foreach (var stream in refused)
            {
                _streams.Remove(stream.Id);
                stream.Failure ??= new Http2StreamException(code, "the peer is going away and did not process the stream", notProcessed: true);
                stream.WakeSender();
            }
        }
        foreach (var stream in refused)
        {
            stream.Fail(stream.Failure!);
        }
    }

    private void OnWindowUpdate(int streamId, ReadOnlySequence<byte> payload)
    {
        var increment = Http2FrameReader.WindowIncrement(payload);
        if (increment == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "WINDOW_UPDATE of 0");
        }
        if (streamId == 0)
        {
            lock (_sync)
            {
                _sendWindow += increment;
                if (_sendWindow > Http2Frame.MaxWindowSize)
                {
                    throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "the connection's window grew past 2^31-1");
                }
                foreach (var stream in _streams.Values)
                {
                    stream.WakeSender();
                }
            }
            return;
        }
        var target = Find(streamId);
        if (target is null)
        {
            return;
        }
        lock (_sync)
        {
            if ((long)target.SendWindow + increment > Http2Frame.MaxWindowSize)
            {
                // A stream error in RFC 9113 6.9.1; this peer is broken, so the connection goes.
                throw new Http2ConnectionException(Http2ErrorCode.FlowControlError, "a stream's window grew past 2^31-1");
            }
            target.SendWindow += increment;
            target.WakeSender();
        }
    }

}

/// <summary>The peer broke the protocol: the connection ends with GOAWAY carrying <see cref="Code"/>.</summary>
internal sealed class Http2ConnectionException(Http2ErrorCode code, string message) : IOException(message)
{
    public Http2ErrorCode Code { get; } = code;
}
