using System.Collections;
using System.Collections.Frozen;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// The stream as the HttpContext sees it: the feature table is the stream itself, so a request costs no feature
/// objects. Features the stream does not serve come from the connection's table (the peer's identity, its TLS, the
/// connection's reset allowance); features set during a request (the authorized request's proof, forwarder errors)
/// go into a small table that is emptied when the object serves its next stream.
/// </summary>
internal sealed partial class Http2ServerStream :
    IFeatureCollection,
    IHttpRequestFeature,
    IHttpResponseFeature,
    IHttpResponseBodyFeature,
    IHttpRequestLifetimeFeature,
    IHttpRequestBodyDetectionFeature,
    IRequestBodyPipeFeature,
    IHttpRequestTrailersFeature,
    IHttpResponseTrailersFeature,
    IHttpResetFeature,
    IHttpExtendedConnectFeature,
    IHttpConnectionFeature,
    IHttpRequestIdentifierFeature,
    IDuplexPipe
{
    private string _pathString = "";
    private string _queryString = "";
    private string _rawTarget = "";
    private string? _traceIdentifier;

    // ---- IFeatureCollection ----

    bool IFeatureCollection.IsReadOnly => false;

    int IFeatureCollection.Revision => _features.Revision;

    object? IFeatureCollection.this[Type key] { get => _features[key]; set => _features[key] = value; }

    TFeature? IFeatureCollection.Get<TFeature>() where TFeature : default => (TFeature?)_features[typeof(TFeature)];

    void IFeatureCollection.Set<TFeature>(TFeature? instance) where TFeature : default => _features[typeof(TFeature)] = instance;

    IEnumerator<KeyValuePair<Type, object>> IEnumerable<KeyValuePair<Type, object>>.GetEnumerator() => _features.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _features.GetEnumerator();

    /// <summary>The features the stream itself serves (extended CONNECT only for such a request).</summary>
    private static readonly Type[] OwnFeatures =
    [
        typeof(IHttpRequestFeature), typeof(IHttpResponseFeature), typeof(IHttpResponseBodyFeature), typeof(IHttpRequestLifetimeFeature),
        typeof(IHttpRequestBodyDetectionFeature), typeof(IRequestBodyPipeFeature), typeof(IHttpResponseTrailersFeature), typeof(IHttpResetFeature),
        typeof(IHttpConnectionFeature), typeof(IHttpRequestIdentifierFeature), typeof(IHttpRequestTrailersFeature), typeof(IHttpExtendedConnectFeature),
    ];

    private static readonly FrozenSet<Type> Served = OwnFeatures.ToFrozenSet();

    private bool Serves(Type key) => key != typeof(IHttpExtendedConnectFeature) ? Served.Contains(key) : _protocol is not null;

    // ---- IHttpRequestFeature ----

    string IHttpRequestFeature.Protocol { get => "HTTP/2"; set { } }

    string IHttpRequestFeature.Scheme { get => _scheme ?? "https"; set => _scheme = value; }

    string IHttpRequestFeature.Method { get => _method!; set => _method = value; }

    string IHttpRequestFeature.PathBase { get => ""; set { } }

    string IHttpRequestFeature.Path { get => _pathString; set => _pathString = value; }

    string IHttpRequestFeature.QueryString { get => _queryString; set => _queryString = value; }

    string IHttpRequestFeature.RawTarget { get => _rawTarget; set => _rawTarget = value; }

    IHeaderDictionary IHttpRequestFeature.Headers { get => _requestHeaders; set => throw new NotSupportedException("the request's headers are the stream's own"); }

    Stream IHttpRequestFeature.Body
    {
        get => _requestStream ??= _bodyReader.AsStream(leaveOpen: true);
        set => throw new NotSupportedException("the request's body is the stream's own");
    }

    // ---- IHttpRequestBodyDetectionFeature, IRequestBodyPipeFeature, IHttpRequestTrailersFeature ----

    // An extended CONNECT's DATA is the tunnel, read through AcceptAsync's stream, not a request body (as Kestrel has it).
    bool IHttpRequestBodyDetectionFeature.CanHaveBody => _body is not null && _protocol is null;

    PipeReader IRequestBodyPipeFeature.Reader => _bodyReader;

    bool IHttpRequestTrailersFeature.Available => _bodyReader.ReachedEnd;

    IHeaderDictionary IHttpRequestTrailersFeature.Trailers =>
        _bodyReader.ReachedEnd ? (IHeaderDictionary?)_requestTrailers ?? EmptyHeaders.Instance
        : throw new InvalidOperationException("the request's trailers come after its body");

    // ---- IHttpResponseFeature, IHttpResponseBodyFeature ----

    int IHttpResponseFeature.StatusCode
    {
        get => _statusCode;
        set
        {
            ThrowIfStarted();
            _statusCode = value;
        }
    }

    string? IHttpResponseFeature.ReasonPhrase { get => _reasonPhrase; set => _reasonPhrase = value; }

    IHeaderDictionary IHttpResponseFeature.Headers { get => _responseHeaders; set => throw new NotSupportedException("the response's headers are the stream's own"); }

    Stream IHttpResponseFeature.Body
    {
        get => ((IHttpResponseBodyFeature)this).Stream;
        set => throw new NotSupportedException("the response's body is the stream's own");
    }

    bool IHttpResponseFeature.HasStarted => _hasStarted;

    void IHttpResponseFeature.OnStarting(Func<object, Task> callback, object state)
    {
        ThrowIfStarted();
        (_onStarting ??= []).Add((callback, state));
    }

    void IHttpResponseFeature.OnCompleted(Func<object, Task> callback, object state) => (_onCompleted ??= []).Add((callback, state));

    Stream IHttpResponseBodyFeature.Stream => _responseStream ??= _bodyWriter.AsStream(leaveOpen: true);

    PipeWriter IHttpResponseBodyFeature.Writer => _bodyWriter;

    void IHttpResponseBodyFeature.DisableBuffering()
    {
    }

    async Task IHttpResponseBodyFeature.StartAsync(CancellationToken cancellationToken) => await FlushResponseAsync(cancellationToken);

    async Task IHttpResponseBodyFeature.SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken) =>
        await SendFileFallback.SendFileAsync(((IHttpResponseBodyFeature)this).Stream, path, offset, count, cancellationToken);

    async Task IHttpResponseBodyFeature.CompleteAsync() => await CompleteResponseAsync(null);

    private void ThrowIfStarted()
    {
        if (_hasStarted)
        {
            throw new InvalidOperationException("the response has started");
        }
    }

    // ---- IHttpResponseTrailersFeature, IHttpResetFeature ----

    IHeaderDictionary IHttpResponseTrailersFeature.Trailers
    {
        get => _responseTrailers ??= new FieldList(2);
        set => throw new NotSupportedException("the response's trailers are the stream's own");
    }

    void IHttpResetFeature.Reset(int errorCode) => _connection.ResetStream(this, (Http2ErrorCode)errorCode);

    // ---- IHttpRequestLifetimeFeature ----

    CancellationToken IHttpRequestLifetimeFeature.RequestAborted { get => _aborted.Token; set => throw new NotSupportedException("the stream's own token"); }

    void IHttpRequestLifetimeFeature.Abort() => _connection.ResetStream(this, Http2ErrorCode.InternalError);

    // ---- IHttpExtendedConnectFeature (RFC 8441) ----

    bool IHttpExtendedConnectFeature.IsExtendedConnect => _protocol is not null;

    string? IHttpExtendedConnectFeature.Protocol => _protocol;

    async ValueTask<Stream> IHttpExtendedConnectFeature.AcceptAsync()
    {
        if (_protocol is null)
        {
            throw new InvalidOperationException("not an extended CONNECT");
        }
        _statusCode = StatusCodes.Status200OK;
        await FlushResponseAsync(CancellationToken.None);
        return new DuplexStream(this);
    }

    PipeReader IDuplexPipe.Input => _bodyReader;

    PipeWriter IDuplexPipe.Output => _bodyWriter;

    // ---- IHttpConnectionFeature, IHttpRequestIdentifierFeature ----

    string IHttpConnectionFeature.ConnectionId { get => _connection.ConnectionId; set { } }

    IPAddress? IHttpConnectionFeature.RemoteIpAddress { get => _connection.RemoteEndPoint?.Address; set { } }

    IPAddress? IHttpConnectionFeature.LocalIpAddress { get => _connection.LocalEndPoint?.Address; set { } }

    int IHttpConnectionFeature.RemotePort { get => _connection.RemoteEndPoint?.Port ?? 0; set { } }

    int IHttpConnectionFeature.LocalPort { get => _connection.LocalEndPoint?.Port ?? 0; set { } }

    string IHttpRequestIdentifierFeature.TraceIdentifier
    {
        get => _traceIdentifier ??= string.Concat(_connection.ConnectionId, ":", Id.ToString("x8", System.Globalization.CultureInfo.InvariantCulture));
        set => _traceIdentifier = value;
    }

    private sealed class EmptyHeaders
    {
        // Shared by every stream without trailers: nothing may be added to it.
        public static readonly HeaderDictionary Instance = new() { IsReadOnly = true };
    }
}
