using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Inbound;

/// <summary>Headers only a sidecar may set. Whatever a caller sends under these names is dropped.</summary>
internal static class MeshHeaders
{
    public const string ForwardedClientCert = "x-forwarded-client-cert";
    public const string MeshGuardPrefix = "x-meshguard-";

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
