namespace MeshGuard.Proxy.Protocols;

/// <summary>
/// What a gRPC client needs to hear when the mesh itself answers: gRPC reads the outcome from
/// <c>grpc-status</c>, so a refusal is a "Trailers-Only" response (HTTP 200, status in the headers) rather
/// than a bare HTTP error, which clients could only report as UNKNOWN or UNAVAILABLE.
/// </summary>
internal static class GrpcStatus
{
    public const string StatusHeader = "grpc-status";
    public const string MessageHeader = "grpc-message";
    public const string ContentType = "application/grpc";

    /// <summary>A gRPC call: <c>application/grpc</c>, alone or with a <c>+proto</c>/<c>;…</c> suffix.</summary>
    public static bool IsGrpc(HttpRequest request)
    {
        var contentType = request.ContentType;
        return contentType is not null
            && contentType.StartsWith(ContentType, StringComparison.OrdinalIgnoreCase)
            && (contentType.Length == ContentType.Length || contentType[ContentType.Length] is '+' or ';');
    }

    /// <summary>The gRPC code for an HTTP status, as gRPC's own HTTP-to-gRPC mapping gives it.</summary>
    public static string FromHttpStatus(int status) => status switch
    {
        400 => "13", // INTERNAL
        401 => "16", // UNAUTHENTICATED
        403 => "7",  // PERMISSION_DENIED
        404 => "12", // UNIMPLEMENTED
        429 or 502 or 503 or 504 => "14", // UNAVAILABLE
        _ => "2",    // UNKNOWN
    };

    /// <summary>grpc-message is percent-encoded: bytes outside printable ASCII, and '%' itself.</summary>
    public static string EncodeMessage(string message)
    {
        var text = message.AsSpan().TrimEnd('\n');
        var plain = true;
        foreach (var c in text)
        {
            if (c is < ' ' or > '~' or '%')
            {
                plain = false;
                break;
            }
        }
        if (plain)
        {
            return text.ToString();
        }
        var builder = new System.Text.StringBuilder(text.Length + 16);
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(text.ToString()))
        {
            if (b is < (byte)' ' or > (byte)'~' or (byte)'%')
            {
                builder.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append((char)b);
            }
        }
        return builder.ToString();
    }
}
