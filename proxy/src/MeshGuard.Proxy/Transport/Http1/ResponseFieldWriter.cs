using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>
/// Puts the fields of an app's response (or its trailers) straight onto the server's response. Names the app
/// commonly sends map to the server's own name constants, and for those the value string of the previous answer
/// on this connection is reused when the bytes are the same: a steady app costs no string per header.
/// </summary>
internal sealed class ResponseFieldWriter : IFieldSink
{
    private static readonly string[] Known =
    [
        HeaderNames.ContentType, HeaderNames.Date, HeaderNames.Server, HeaderNames.CacheControl, HeaderNames.ETag,
        HeaderNames.LastModified, HeaderNames.Vary, HeaderNames.ContentEncoding, HeaderNames.Expires, HeaderNames.AcceptRanges,
        HeaderNames.Location, HeaderNames.SetCookie, HeaderNames.AccessControlAllowOrigin, HeaderNames.ContentLanguage,
        HeaderNames.ContentDisposition, HeaderNames.Age, HeaderNames.Pragma, HeaderNames.XContentTypeOptions,
        HeaderNames.StrictTransportSecurity, HeaderNames.ContentRange, HeaderNames.Allow, HeaderNames.WWWAuthenticate,
        HeaderNames.RetryAfter, HeaderNames.Link, HeaderNames.Trailer, HeaderNames.GrpcStatus, HeaderNames.GrpcMessage,
        HeaderNames.GrpcEncoding, "x-request-id", "traceparent",
    ];

    /// <summary>Fields the sidecar's server writes itself, or that make no sense as trailers (RFC 9110 6.5.1).</summary>
    private static readonly HashSet<string> NotTrailers = new(StringComparer.OrdinalIgnoreCase)
    {
        HeaderNames.ContentLength, HeaderNames.ContentType, HeaderNames.ContentEncoding, HeaderNames.ContentRange,
        HeaderNames.TransferEncoding, HeaderNames.Host, HeaderNames.Trailer, HeaderNames.Authorization, HeaderNames.SetCookie,
        HeaderNames.CacheControl, HeaderNames.Expect, HeaderNames.Connection, HeaderNames.TE, HeaderNames.Date, HeaderNames.Location,
    };

    private readonly string?[] _lastValues = new string?[Known.Length];
    private HttpResponse? _response;
    private bool _trailers;

    /// <summary>Fields go to <paramref name="response"/>'s headers, or its trailers when <paramref name="trailers"/>.</summary>
    public IFieldSink For(HttpResponse response, bool trailers)
    {
        _response = response;
        _trailers = trailers;
        return this;
    }

    public void Release() => _response = null;

    public void OnField(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var response = _response!;
        string nameText, valueText;
        var known = IndexOf(name);
        if (known >= 0)
        {
            nameText = Known[known];
            var last = _lastValues[known];
            if (last is not null && last.Length == value.Length && Ascii.Equals(value, last))
            {
                valueText = last;
            }
            else
            {
                valueText = _lastValues[known] = Encoding.Latin1.GetString(value);
            }
        }
        else
        {
            nameText = Encoding.ASCII.GetString(name);
            valueText = Encoding.Latin1.GetString(value);
        }
        if (!_trailers)
        {
            response.Headers.Append(nameText, valueText);
        }
        else if (response.SupportsTrailers() && !NotTrailers.Contains(nameText))
        {
            response.AppendTrailer(nameText, valueText);
        }
    }

    private static int IndexOf(ReadOnlySpan<byte> name)
    {
        for (var i = 0; i < Known.Length; i++)
        {
            if (Known[i].Length == name.Length && Ascii.EqualsIgnoreCase(name, Known[i]))
            {
                return i;
            }
        }
        return -1;
    }
}
