using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Inbound;

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

    public static void RemoveForgeable(IHeaderDictionary headers)
    {
        headers.Remove(ForwardedClientCert);
        // Rare: only pay for a list when such a header is present.
        List<string>? forged = null;
        foreach (var header in headers)
        {
            if (header.Key.StartsWith(MeshGuardPrefix, StringComparison.OrdinalIgnoreCase))
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
