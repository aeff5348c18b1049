using System.Collections;
using System.Collections.Frozen;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>
/// The connection's present request as the HttpContext sees it: the feature table is the connection object itself,
/// so a request costs no feature objects. Features it does not serve come from the connection's table (the peer's
/// identity, its TLS, a redirected connection's destination); features set during a request (the authorized
/// request's proof, forwarder errors) go into a small table that is emptied before the next request. No trailers
/// either way and no reset: HTTP/1.1 has neither here (Kestrel's HTTP/1.1 server offers them no more).
/// </summary>
internal sealed partial class Http1ServerConnection :
    IFeatureCollection,
    IHttpRequestFeature,
    IHttpResponseFeature,
    IHttpResponseBodyFeature,
    IHttpRequestLifetimeFeature,
    IHttpRequestBodyDetectionFeature,
    IRequestBodyPipeFeature,
    IHttpConnectionFeature,
    IHttpRequestIdentifierFeature
{
    private string? _traceIdentifier;
    private Stream? _requestStream;
    private Stream? _responseStream;
    private string? _path;
    private string? _query;

    // ---- IFeatureCollection ----

    bool IFeatureCollection.IsReadOnly => false;

    int IFeatureCollection.Revision => _features.Revision;

    object? IFeatureCollection.this[Type key] { get => _features[key]; set => _features[key] = value; }

    TFeature? IFeatureCollection.Get<TFeature>() where TFeature : default => (TFeature?)_features[typeof(TFeature)];

    void IFeatureCollection.Set<TFeature>(TFeature? instance) where TFeature : default => _features[typeof(TFeature)] = instance;

    IEnumerator<KeyValuePair<Type, object>> IEnumerable<KeyValuePair<Type, object>>.GetEnumerator() => _features.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _features.GetEnumerator();

    /// <summary>The features the connection object itself serves.</summary>
    private static readonly Type[] OwnFeatures =
    [
        typeof(IHttpRequestFeature), typeof(IHttpResponseFeature), typeof(IHttpResponseBodyFeature), typeof(IHttpRequestLifetimeFeature),
        typeof(IHttpRequestBodyDetectionFeature), typeof(IRequestBodyPipeFeature), typeof(IHttpConnectionFeature), typeof(IHttpRequestIdentifierFeature),
    ];

    private static readonly FrozenSet<Type> Served = OwnFeatures.ToFrozenSet();

    private static bool Serves(Type key) => Served.Contains(key);

    // ---- IHttpRequestFeature ----

    string IHttpRequestFeature.Protocol { get => "HTTP/1.1"; set { } }

    string IHttpRequestFeature.Scheme { get => _scheme; set { } }

    string IHttpRequestFeature.Method { get => _head.Method; set => _head.Method = value; }

    string IHttpRequestFeature.PathBase { get => ""; set { } }

    // The path as sent, as the HTTP/2 server has it: the handlers read the canonical form from the raw target. In
    // origin-form without a query it is the target itself; otherwise made once per request.
    string IHttpRequestFeature.Path
    {
        get => _path ??= _head.PathAt == 0 && _head.QueryAt < 0 ? _head.RawTarget
            : (_head.QueryAt < 0 ? _head.RawTarget[_head.PathAt..] : _head.RawTarget[_head.PathAt.._head.QueryAt]) is { Length: > 0 } path ? path : "/";
        set => throw new NotSupportedException("the request's path is the one it came with");
    }

    string IHttpRequestFeature.QueryString
    {
        get => _head.QueryAt < 0 ? "" : _query ??= _head.RawTarget[_head.QueryAt..];
        set => throw new NotSupportedException("the request's query is the one it came with");
    }

    string IHttpRequestFeature.RawTarget { get => _head.RawTarget; set => throw new NotSupportedException("the request's target is the one it came with"); }

    IHeaderDictionary IHttpRequestFeature.Headers { get => _requestHeaders; set => throw new NotSupportedException("the request's headers are the connection's own"); }

    Stream IHttpRequestFeature.Body
    {
        get => _requestStream ??= _bodyReader.AsStream(leaveOpen: true);
        set => throw new NotSupportedException("the request's body is the connection's own");
    }

    // ---- IHttpRequestBodyDetectionFeature, IRequestBodyPipeFeature ----

    bool IHttpRequestBodyDetectionFeature.CanHaveBody => _head.Chunked || _head.ContentLength > 0;

    PipeReader IRequestBodyPipeFeature.Reader => _bodyReader;

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

    bool IHttpResponseFeature.HasStarted => _bodyWriter.Started;

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

    async Task IHttpResponseBodyFeature.StartAsync(CancellationToken cancellationToken) => await _bodyWriter.FlushAsync(cancellationToken);

    async Task IHttpResponseBodyFeature.SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken) =>
        await SendFileFallback.SendFileAsync(((IHttpResponseBodyFeature)this).Stream, path, offset, count, cancellationToken);

    async Task IHttpResponseBodyFeature.CompleteAsync()
    {
        if (_bodyWriter.End())
        {
            await _output.FlushAsync();
        }
    }

    private void ThrowIfStarted()
    {
        if (_bodyWriter.Started)
        {
            throw new InvalidOperationException("the response has started");
        }
    }

    // ---- IHttpRequestLifetimeFeature ----

    CancellationToken IHttpRequestLifetimeFeature.RequestAborted { get => _aborted.Token; set => throw new NotSupportedException("the stream's own token"); }

    void IHttpRequestLifetimeFeature.Abort() => _connection.Abort(new ConnectionAbortedException("the request was aborted"));

    // ---- IHttpConnectionFeature, IHttpRequestIdentifierFeature ----

    string IHttpConnectionFeature.ConnectionId { get => _connection.ConnectionId; set { } }

    IPAddress? IHttpConnectionFeature.RemoteIpAddress { get => RemoteEndPoint?.Address; set { } }

    IPAddress? IHttpConnectionFeature.LocalIpAddress { get => LocalEndPoint?.Address; set { } }

    int IHttpConnectionFeature.RemotePort { get => RemoteEndPoint?.Port ?? 0; set { } }

    int IHttpConnectionFeature.LocalPort { get => LocalEndPoint?.Port ?? 0; set { } }

    string IHttpRequestIdentifierFeature.TraceIdentifier
    {
        get => _traceIdentifier ??= string.Concat(_connection.ConnectionId, ":", _requests.ToString("x8", System.Globalization.CultureInfo.InvariantCulture));
        set => _traceIdentifier = value;
    }
}
