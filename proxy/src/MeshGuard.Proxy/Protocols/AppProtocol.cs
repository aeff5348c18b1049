namespace MeshGuard.Proxy.Protocols;

/// <summary>The HTTP version the inbound side speaks to the local app (<c>--app-protocol</c>).</summary>
internal enum AppProtocol
{
    /// <summary>The caller's own: an HTTP/2 (and so gRPC) caller reaches the app over cleartext HTTP/2, an HTTP/1.x caller over HTTP/1.1.</summary>
    Auto,

    /// <summary>Always HTTP/1.1, for apps that speak nothing else (an HTTP/2 caller is served, gRPC is not).</summary>
    Http1,

    /// <summary>Always cleartext HTTP/2 (prior knowledge), for gRPC-only apps.</summary>
    Http2,
}
