namespace MeshGuard.Proxy.Transport.Http1;

/// <summary>
/// A connection the own HTTP/1.1 server left to Kestrel's at a request that was not plain, with the fields that
/// request's Connection header named as the own server read them. Kestrel's collection cannot say: of a value like
/// <c>x-hop, close</c> it keeps only <c>close</c>. So the request Kestrel serves first drops what the own server read,
/// and its answer closes the connection (unless it switches protocols), so that Kestrel never serves a request the
/// own server has not read.
/// </summary>
internal sealed class Http1HandOver(string named)
{
    private string? _named = named;

    /// <summary>
    /// For a request Kestrel's server serves on a sidecar port, before any handler sees it: drops the fields its
    /// Connection header names. Where the own server handed the connection over, the names it read are used, once.
    /// (The own servers' requests come this way too while telemetry export is on; theirs were dropped already.)
    /// </summary>
    public static void Apply(HttpContext context)
    {
        var headers = context.Request.Headers;
        if (context.Features.Get<Http1HandOver>() is { } handOver && Interlocked.Exchange(ref handOver._named, null) is { } named)
        {
            HopByHopFields.RemoveNamed(headers, named);
            context.Response.OnStarting(static state =>
            {
                var response = (HttpResponse)state;
                if (response.StatusCode != StatusCodes.Status101SwitchingProtocols)
                {
                    response.Headers.Connection = "close";
                }
                return Task.CompletedTask;
            }, context.Response);
        }
        if (headers.Connection is { Count: > 0 } connection)
        {
            HopByHopFields.RemoveNamed(headers, connection);
        }
    }
}
