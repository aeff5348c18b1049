using MeshGuard.Contracts.V1;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Outbound;

namespace MeshGuard.Proxy.Tests.Outbound;

public sealed class ServiceDirectoryTests
{
    private static ServiceDirectory NewDirectory(string ownNamespace) =>
        new(ownNamespace, new MeshConnectionPools(new SpiffeConnector(new WorkloadIdentity(TimeProvider.System), TimeProvider.System)));

    private static ServiceTable Table(params (string Name, string Ns, string Address)[] services)
    {
        var table = new ServiceTable { Version = 7 };
        foreach (var (name, ns, address) in services)
        {
            var service = new Service { Name = name, Namespace = ns };
            service.Endpoints.Add(new Endpoint { Address = address, SpiffeId = $"spiffe://mesh.local/ns/{ns}/sa/{name}" });
            table.Services.Add(service);
        }
        return table;
    }

    [Theory]
    [InlineData("orders")]
    [InlineData("orders:8080")]
    [InlineData("orders.shop")]
    [InlineData("ORDERS.shop:80")]
    public void ResolvesABareNameOrNameDotNamespaceWithOrWithoutPort(string host)
    {
        var directory = NewDirectory("shop");
        directory.Apply(Table(("orders", "shop", "127.0.0.1:1001")));
        var route = directory.Resolve(host);
        Assert.NotNull(route);
        Assert.Equal("orders", route.Name);
        Assert.Equal("spiffe://mesh.local/ns/shop/sa/orders", route.Pick().Identity.ToString());
    }

    [Fact]
    public void ABareNamePrefersTheCallersOwnNamespace()
    {
        var directory = NewDirectory("billing");
        directory.Apply(Table(("api", "shop", "127.0.0.1:1001"), ("api", "billing", "127.0.0.1:1002")));
        Assert.Equal("billing", directory.Resolve("api")!.Namespace);
        Assert.Equal("shop", directory.Resolve("api.shop")!.Namespace);
    }

    [Fact]
    public void AnAmbiguousBareNameFromAnotherNamespaceDoesNotResolve()
    {
        var directory = NewDirectory("frontend");
        directory.Apply(Table(("api", "shop", "127.0.0.1:1001"), ("api", "billing", "127.0.0.1:1002")));
        Assert.Null(directory.Resolve("api"));
        Assert.NotNull(directory.Resolve("api.billing"));
    }

    [Fact]
    public void UnknownHostsDoNotResolve()
    {
        var directory = NewDirectory("shop");
        directory.Apply(Table(("orders", "shop", "127.0.0.1:1001")));
        Assert.Null(directory.Resolve("payments"));
        Assert.Null(directory.Resolve("orders.other"));
        Assert.Null(directory.Resolve(""));
    }

    [Fact]
    public void EndpointsAreTakenInTurn()
    {
        var table = Table(("orders", "shop", "127.0.0.1:1001"));
        table.Services[0].Endpoints.Add(new Endpoint { Address = "127.0.0.1:1002", SpiffeId = "spiffe://mesh.local/ns/shop/sa/orders" });
        var directory = NewDirectory("shop");
        directory.Apply(table);
        var route = directory.Resolve("orders")!;
        var seen = new HashSet<string> { route.Pick().Address, route.Pick().Address };
        Assert.Equal(2, seen.Count);
    }

    [Fact]
    public void EndpointsWithABadAddressOrIdentityAreSkipped()
    {
        var table = Table(("orders", "shop", "not-an-address"));
        table.Services[0].Endpoints.Add(new Endpoint { Address = "127.0.0.1:1002", SpiffeId = "not a spiffe id" });
        var directory = NewDirectory("shop");
        directory.Apply(table);
        Assert.Null(directory.Resolve("orders"));
        Assert.Equal(7, directory.Version);
    }
}

public sealed class MeshConnectionPoolsTests
{
    [Fact]
    public void EachServerIdentityGetsItsOwnPoolAndTheSameIdentityTheSamePool()
    {
        using var pools = new MeshConnectionPools(new SpiffeConnector(new WorkloadIdentity(TimeProvider.System), TimeProvider.System));
        var orders = pools.For(MeshGuard.Spiffe.SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/orders"));
        var payments = pools.For(MeshGuard.Spiffe.SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/payments"));
        Assert.NotSame(orders, payments);
        Assert.Same(orders, pools.For(MeshGuard.Spiffe.SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/orders")));
    }
}
