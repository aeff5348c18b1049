namespace MeshGuard.Proxy.Protocols;

/// <summary>What the first bytes of a connection from the app say it speaks.</summary>
internal enum DetectedProtocol
{
    /// <summary>An HTTP/1.x request line.</summary>
    Http1,

    /// <summary>The HTTP/2 connection preface (prior knowledge, as gRPC clients send it).</summary>
    Http2,

    /// <summary>Anything else, or nothing within the detection time (a protocol whose server speaks first).</summary>
    Opaque,
}
