using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Transport;

/// <summary>Headers only a sidecar may set. Whatever a caller sends under these names is dropped.</summary>
internal static class MeshHeaders
{
    public const string ForwardedClientCert = "x-forwarded-client-cert";
    public const string MeshGuardPrefix = "x-meshguard-";

    /// <summary>
    /// Set by the caller's sidecar on requests the app sent as HTTP/2 (the leg between sidecars is always
    /// HTTP/2, so the version the app spoke would otherwise be lost); absent means HTTP/1.x. Read by the
    /// destination's sidecar to speak the same version to its app, then dropped with the other mesh headers.
    /// </summary>
    public const string OriginalProtocol = "x-meshguard-orig-proto";

    public const string OriginalProtocolHttp2 = "HTTP/2";

    /// <summary>Headers that claim where a request came from; a peer's word on them is only its own.</summary>
    private static readonly string[] ForwardingHeaders = ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"];

    /// <summary>
    /// Whether a request field is one only a sidecar may set (or, with <see cref="ForwardedHeaders.Remove"/>, one that
    /// claims where the request came from). The hand-written legs skip such fields as they write the head, in the one
    /// pass they make over the headers anyway; <see cref="RemoveForgeable"/> takes them out for the other paths.
    /// </summary>
    public static bool IsForgeable(string name, ForwardedHeaders forwarding)
    {
        if (name.StartsWith(MeshGuardPrefix, StringComparison.OrdinalIgnoreCase) || name.Equals(ForwardedClientCert, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }
        if (forwarding == ForwardedHeaders.Remove)
        {
            foreach (var forwardingHeader in ForwardingHeaders)
            {
                if (name.Equals(forwardingHeader, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
        }
        return false;
    }

    public static void RemoveForgeable(IHeaderDictionary headers, ForwardedHeaders forwarding)
    {
        // Rare: only pay for a list when such a header is present.
        List<string>? forged = null;
        foreach (var header in headers)
        {
            if (IsForgeable(header.Key, forwarding))
            {
                (forged ??= []).Add(header.Key);
            }
        }
        if (forged is not null)
        {
            foreach (var name in forged)
            {
                headers.Remove(name);
            }
        }
    }

    /// <summary>Envoy's form: By=&lt;this workload&gt;;URI=&lt;the peer&gt;.</summary>
    public static StringValues ForwardedClientCertValue(string ownId, string peerId) => new("By=" + ownId + ";URI=" + peerId);
}

/// <summary>
/// What the callee's sidecar does with <c>Forwarded</c>, <c>X-Forwarded-For</c>, <c>-Host</c>, <c>-Proto</c> and
/// <c>X-Real-IP</c> from a peer: removes them (the default: the verified caller is in x-forwarded-client-cert alone),
/// or passes them on for apps that trust a gateway in front of the mesh.
/// </summary>
internal enum ForwardedHeaders
{
    Remove,
    Keep,
}
