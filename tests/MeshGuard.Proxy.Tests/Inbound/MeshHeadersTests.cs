using MeshGuard.Proxy.Inbound;
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
        };
        MeshHeaders.RemoveForgeable(headers);
        Assert.Equal(["Accept", "x-tenant"], headers.Keys.Order(StringComparer.Ordinal).ToArray());
    }

    [Fact]
    public void ForwardedClientCertFollowsEnvoysForm() =>
        Assert.Equal(
            "By=spiffe://mesh.local/ns/shop/sa/orders;URI=spiffe://mesh.local/ns/shop/sa/frontend",
            MeshHeaders.ForwardedClientCertValue("spiffe://mesh.local/ns/shop/sa/orders", "spiffe://mesh.local/ns/shop/sa/frontend").ToString());
}
