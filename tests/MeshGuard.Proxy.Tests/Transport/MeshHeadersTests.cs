using MeshGuard.Proxy.Inbound;
using MeshGuard.Proxy.Transport;
using Microsoft.AspNetCore.Http;

namespace MeshGuard.Proxy.Tests.Inbound;

public sealed class MeshHeadersTests
{
    [Fact]
    public void RemovesForwardedClientCertAndEveryMeshGuardHeaderButNothingElse()
    {
        var headers = new HeaderDictionary
        {
            ["X-Forwarded-Client-Cert"] = "By=x;URI=spiffe://mesh.local/ns/shop/sa/admin",
            ["x-meshguard-identity"] = "admin",
            ["X-MeshGuard-Decision"] = "allow",
            ["x-tenant"] = "acme",
            ["Accept"] = "*/*",
            ["X-Forwarded-For"] = "10.0.0.1",
        };
        MeshHeaders.RemoveForgeable(headers, ForwardedHeaders.Keep);
        Assert.Equal(["Accept", "X-Forwarded-For", "x-tenant"], headers.Keys.Order(StringComparer.Ordinal).ToArray());
    }

    [Fact]
    public void ForwardingHeadersFromAPeerAreRemovedByDefault()
    {
        var headers = new HeaderDictionary
        {
            ["Forwarded"] = "for=10.0.0.1",
            ["X-Forwarded-For"] = "10.0.0.1",
            ["x-forwarded-host"] = "admin.internal",
            ["X-Forwarded-Proto"] = "https",
            ["X-Real-IP"] = "10.0.0.1",
            ["Accept"] = "*/*",
        };
        MeshHeaders.RemoveForgeable(headers, ForwardedHeaders.Remove);
        Assert.Equal(["Accept"], headers.Keys.ToArray());
    }

    [Fact]
    public void ForwardedClientCertFollowsEnvoysForm() =>
        Assert.Equal(
            "By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/shop/sa/frontend",
            MeshHeaders.ForwardedClientCertValue("spiffe://mesh.local/ns/shop/sa/orders", "spiffe://mesh.local/ns/shop/sa/frontend").ToString());
}
