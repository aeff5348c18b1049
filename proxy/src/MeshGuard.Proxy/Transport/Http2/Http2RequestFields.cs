using System.Buffers;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// The request fields an HTTP/2 client leg passes on from the request the sidecar's server holds, and how they are
/// encoded: the same rule for the outbound leg to a peer sidecar and the inbound leg to an HTTP/2 app.
/// </summary>
internal static class Http2RequestFields
{
    /// <summary>Request fields that stop at this hop or that the leg writes itself (RFC 9113 8.2.2).</summary>
    private static readonly HashSet<string> NotForwarded = new(StringComparer.OrdinalIgnoreCase)
    {
        HeaderNames.Host, HeaderNames.Connection, HeaderNames.KeepAlive, "Proxy-Connection", HeaderNames.TransferEncoding,
        HeaderNames.Upgrade, HeaderNames.TE, "HTTP2-Settings",
    };

    private static readonly KeyValuePair<string, StringValues> TeTrailers = new("te", "trailers");

    /// <summary>
    /// The fields that go on, into <paramref name="fields"/> (emptied first), in one pass over the server's collection
    /// (through its struct enumerator where it has one); false if a field holds what HTTP/2 cannot carry. Checked
    /// before the stream opens: the encoder's table must never hold half a block. Fields only a sidecar may set are
    /// left out (<see cref="MeshHeaders.IsForgeable"/>).
    /// </summary>
    public static bool TryTake(IHeaderDictionary headers, List<KeyValuePair<string, StringValues>> fields, ForwardedHeaders forwarding)
    {
        fields.Clear();
        if (headers is FieldList own)
        {
            foreach (var field in own)
            {
                if (!TryTake(field, fields, forwarding))
                {
                    return false;
                }
            }
            return true;
        }
        foreach (var field in headers)
        {
            if (!TryTake(field, fields, forwarding))
            {
                return false;
            }
        }
        return true;
    }

    private static bool TryTake(KeyValuePair<string, StringValues> field, List<KeyValuePair<string, StringValues>> fields, ForwardedHeaders forwarding)
    {
        var name = field.Key;
        if (MeshHeaders.IsForgeable(name, forwarding))
        {
            return true;
        }
        if (!AreSendable(field.Value))
        {
            return false;
        }
        if (name.Length == 0 || name[0] == ':' || NotForwarded.Contains(name))
        {
            if (name.Equals(HeaderNames.TE, StringComparison.OrdinalIgnoreCase) && field.Value.Count == 1 && string.Equals(field.Value[0], "trailers", StringComparison.OrdinalIgnoreCase))
            {
                // The one TE HTTP/2 allows (gRPC sends it).
                fields.Add(TeTrailers);
            }
            return true;
        }
        fields.Add(field);
        return true;
    }

    /// <summary>Whether every value can be carried as an HTTP/2 field value.</summary>
    public static bool AreSendable(StringValues values)
    {
        foreach (var value in values)
        {
            if (value is not null && !HpackEncoder.IsSendable(value))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Under the connection's lock: the fields <see cref="TryTake"/> took.</summary>
    public static void Write(HpackEncoder encoder, IBufferWriter<byte> block, List<KeyValuePair<string, StringValues>> fields)
    {
        foreach (var (name, values) in fields)
        {
            var indexing = IndexingFor(name);
            foreach (var value in values)
            {
                encoder.WriteField(block, name, value ?? "", indexing);
            }
        }
    }

    /// <summary>Fields that repeat across requests enter the table; per-request values and credentials do not.</summary>
    private static HpackIndexing IndexingFor(string name)
    {
        if (name.Equals(HeaderNames.Authorization, StringComparison.OrdinalIgnoreCase) || name.Equals(HeaderNames.Cookie, StringComparison.OrdinalIgnoreCase)
            || name.Equals(HeaderNames.ProxyAuthorization, StringComparison.OrdinalIgnoreCase))
        {
            return HpackIndexing.NeverIndex;
        }
        if (name.Equals(HeaderNames.ContentLength, StringComparison.OrdinalIgnoreCase) || name.Equals("x-request-id", StringComparison.OrdinalIgnoreCase)
            || name.Equals("traceparent", StringComparison.OrdinalIgnoreCase) || name.Equals("tracestate", StringComparison.OrdinalIgnoreCase)
            || name.Equals(HeaderNames.GrpcTimeout, StringComparison.OrdinalIgnoreCase))
        {
            return HpackIndexing.NoIndex;
        }
        return HpackIndexing.Index;
    }
}
