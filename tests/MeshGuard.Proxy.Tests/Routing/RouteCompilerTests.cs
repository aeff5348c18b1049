using MeshGuard.Contracts.V1;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Outbound.Resilience;
using MeshGuard.Proxy.Routing;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.Proxy.Tests.Routing;

public sealed class RouteCompilerTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-24T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    private static readonly OutboundResilience Resilience = OutboundResilience.Default with
    {
        CircuitMinimumThroughput = 4,
        CircuitBreakDuration = TimeSpan.FromSeconds(5),
    };

    private RouteCompiler NewCompiler(string ownNamespace) =>
        new(ownNamespace, new MeshConnectionPools(new SpiffeConnector(new WorkloadIdentity(TimeProvider.System), TimeProvider.System), TimeProvider.System),
            () => new EndpointCircuit(Resilience, _time, new OutboundMetrics()));

    /// <summary>One try through the circuit, entered and exited as the outbound handler does: null when the circuit refused it.</summary>
    private static TryOutcome? Run(EndpointCircuit circuit, TryOutcome outcome)
    {
        if (!circuit.TryEnter(out var trial))
        {
            return null;
        }
        circuit.Exit(trial, outcome);
        return outcome;
    }

    private static void Eject(MeshEndpoint endpoint)
    {
        for (var i = 0; i < Resilience.CircuitMinimumThroughput; i++)
        {
            Run(endpoint.Circuit, TryOutcome.ConnectFailed);
        }
        Assert.True(endpoint.Circuit.IsOpen);
    }

    private ServiceRoute TwoEndpoints()
    {
        var table = Table(("orders", "shop", "127.0.0.1:1001"));
        table.Services[0].Endpoints.Add(new Endpoint { Address = "127.0.0.1:1002", SpiffeId = "spiffe://mesh.local/ns/shop/sa/orders" });
        var compiler = NewCompiler("shop");
        var routes = compiler.Compile(table);
        return routes.Resolve("orders")!;
    }

    private static ServiceTable Table(params (string Name, string Ns, string Address)[] services)
    {
        var table = new ServiceTable { Version = 7 };
        foreach (var (name, ns, address) in services)
        {
            var service = new Service { Name = name, Namespace = ns, AllowedIds = { $"spiffe://mesh.local/ns/{ns}/sa/{name}" } };
            service.Endpoints.Add(new Endpoint { Address = address, SpiffeId = $"spiffe://mesh.local/ns/{ns}/sa/{name}" });
            table.Services.Add(service);
        }
        return table;
    }

    [Fact]
    public void RedirectedAddressResolvesToTheServiceWithAnEndpointThere()
    {
        var compiler = NewCompiler("shop");
        var routes = compiler.Compile(Table(("orders", "shop", "10.77.0.2:15006"), ("payments", "billing", "10.77.0.3:15006")));

        Assert.Equal("orders.shop", routes.ResolveAddress(System.Net.IPAddress.Parse("10.77.0.2"))!.QualifiedName);
        Assert.Equal("payments.billing", routes.ResolveAddress(System.Net.IPAddress.Parse("10.77.0.3"))!.QualifiedName);
        Assert.Null(routes.ResolveAddress(System.Net.IPAddress.Parse("10.77.0.9")));
    }

    [Fact]
    public void AddressSharedByTwoServicesResolvesToNeither()
    {
        var compiler = NewCompiler("shop");
        var routes = compiler.Compile(Table(("orders", "shop", "127.0.0.1:1001"), ("payments", "shop", "127.0.0.1:1002"), ("stock", "shop", "10.77.0.4:15006")));

        Assert.Null(routes.ResolveAddress(System.Net.IPAddress.Loopback));
        Assert.Equal("stock", routes.ResolveAddress(System.Net.IPAddress.Parse("10.77.0.4"))!.Name);
    }

    [Theory]
    [InlineData("orders")]
    [InlineData("orders:8080")]
    [InlineData("orders.shop")]
    [InlineData("ORDERS.shop:80")]
    [InlineData("orders.shop.svc")]
    [InlineData("orders.shop.svc.cluster.local:8080")]
    public void ResolvesABareNameNameDotNamespaceOrKubernetesServiceNameWithOrWithoutPort(string host)
    {
        var compiler = NewCompiler("shop");
        var routes = compiler.Compile(Table(("orders", "shop", "127.0.0.1:1001")));
        var route = routes.Resolve(host);
        Assert.NotNull(route);
        Assert.Equal("orders", route.Name);
        Assert.Equal("spiffe://mesh.local/ns/shop/sa/orders", route.Pick()!.Identity.ToString());
    }

    [Fact]
    public void ABareNamePrefersTheCallersOwnNamespace()
    {
        var compiler = NewCompiler("billing");
        var routes = compiler.Compile(Table(("api", "shop", "127.0.0.1:1001"), ("api", "billing", "127.0.0.1:1002")));
        Assert.Equal("billing", routes.Resolve("api")!.Namespace);
        Assert.Equal("shop", routes.Resolve("api.shop")!.Namespace);
    }

    [Fact]
    public void AnAmbiguousBareNameFromAnotherNamespaceDoesNotResolve()
    {
        var compiler = NewCompiler("frontend");
        var routes = compiler.Compile(Table(("api", "shop", "127.0.0.1:1001"), ("api", "billing", "127.0.0.1:1002")));
        Assert.Null(routes.Resolve("api"));
        Assert.NotNull(routes.Resolve("api.billing"));
    }

    [Fact]
    public void UnknownHostsDoNotResolve()
    {
        var compiler = NewCompiler("shop");
        var routes = compiler.Compile(Table(("orders", "shop", "127.0.0.1:1001")));
        Assert.Null(routes.Resolve("payments"));
        Assert.Null(routes.Resolve("orders.other"));
        Assert.Null(routes.Resolve(""));
    }

    [Fact]
    public void PickSendsToTheEndpointWithFewerTriesInFlight()
    {
        var route = TwoEndpoints();
        var busy = route.Endpoints[0];
        Assert.True(busy.Circuit.TryEnter(out var trial));
        Assert.Equal(1, busy.Circuit.InFlight);
        for (var i = 0; i < 20; i++)
        {
            Assert.Same(route.Endpoints[1], route.Pick());
        }
        busy.Circuit.Exit(trial, TryOutcome.Relayed);
        Assert.Equal(0, busy.Circuit.InFlight);
        var seen = new HashSet<MeshEndpoint>();
        for (var i = 0; i < 50; i++)
        {
            seen.Add(route.Pick()!);
        }
        Assert.Equal(2, seen.Count);
    }

    [Fact]
    public void AnEjectedEndpointIsSkippedUntilItsBreakEndsAndATrialThatSucceedsBringsItBack()
    {
        var route = TwoEndpoints();
        var failing = route.Endpoints[0];
        Eject(failing);
        for (var i = 0; i < 20; i++)
        {
            Assert.Same(route.Endpoints[1], route.Pick());
        }
        // The other endpoint is avoided after its failure, but an ejected one is still not an option.
        Assert.Same(route.Endpoints[1], route.Pick(avoid: route.Endpoints[1]));

        _time.Advance(Resilience.CircuitBreakDuration);
        Assert.False(failing.Circuit.IsOpen);
        Assert.True(failing.Circuit.IsEjected);
        var trial = Run(failing.Circuit, TryOutcome.Relayed);
        Assert.Equal(TryOutcome.Relayed, trial);
        Assert.False(failing.Circuit.IsEjected);
    }

    [Fact]
    public void AFailedTrialKeepsTheEndpointOutForLongerEachTime()
    {
        var route = TwoEndpoints();
        var failing = route.Endpoints[0];
        Eject(failing);
        _time.Advance(Resilience.CircuitBreakDuration);
        Run(failing.Circuit, TryOutcome.ConnectFailed);
        Assert.True(failing.Circuit.IsOpen);
        _time.Advance(Resilience.CircuitBreakDuration);
        Assert.True(failing.Circuit.IsOpen);
        _time.Advance(Resilience.CircuitBreakDuration);
        Assert.False(failing.Circuit.IsOpen);
    }

    [Fact]
    public void WhileItsCircuitIsOpenAnEndpointRefusesTriesWithoutRunningThem()
    {
        var route = TwoEndpoints();
        Eject(route.Endpoints[0]);
        Assert.False(route.Endpoints[0].Circuit.TryEnter(out _));
        Assert.Equal(0, route.Endpoints[0].Circuit.InFlight);
    }

    [Fact]
    public void FiveFailuresInARowEjectAnEndpointBeforeItsFailureRatioCouldAndASuccessClearsItsRecord()
    {
        // A window full of earlier successes: the ratio alone would need as many failures again.
        var circuit = new EndpointCircuit(Resilience with { CircuitMinimumThroughput = 1000 }, _time, new OutboundMetrics());
        for (var i = 0; i < 50; i++)
        {
            Run(circuit, TryOutcome.Relayed);
        }
        for (var i = 0; i < 4; i++)
        {
            Run(circuit, TryOutcome.ConnectFailed);
        }
        Run(circuit, TryOutcome.Relayed);
        for (var i = 0; i < 4; i++)
        {
            Run(circuit, TryOutcome.RelayedFailure);
        }
        Assert.False(circuit.IsEjected);
        Run(circuit, TryOutcome.TimedOut);
        Assert.True(circuit.IsOpen);

        // Back after the break; one more failure ejects it for twice as long, a success clears it.
        _time.Advance(Resilience.CircuitBreakDuration);
        Assert.False(circuit.IsOpen);
        Run(circuit, TryOutcome.ConnectFailed);
        _time.Advance(Resilience.CircuitBreakDuration);
        Assert.True(circuit.IsOpen);
        _time.Advance(Resilience.CircuitBreakDuration);
        Assert.False(circuit.IsOpen);
        Run(circuit, TryOutcome.Relayed);
        Assert.False(circuit.IsEjected);
    }

    [Fact]
    public void WithEveryEndpointEjectedPickReturnsNone()
    {
        var route = TwoEndpoints();
        Eject(route.Endpoints[0]);
        Eject(route.Endpoints[1]);
        Assert.Null(route.Pick());
    }

    [Fact]
    public void AnswersTheAppGetsAndCallersThatLeaveDoNotEjectAnEndpoint()
    {
        var route = TwoEndpoints();
        for (var i = 0; i < 20; i++)
        {
            Run(route.Endpoints[0].Circuit, i % 2 == 0 ? TryOutcome.Relayed : TryOutcome.AppSide);
        }
        Assert.False(route.Endpoints[0].Circuit.IsEjected);
    }

    [Fact]
    public void AnEndpointKeepsItsCircuitWhenANewServiceTableListsItAgain()
    {
        var table = Table(("orders", "shop", "127.0.0.1:1001"));
        var compiler = NewCompiler("shop");
        var routes = compiler.Compile(table);
        var before = routes.Resolve("orders")!.Endpoints[0];
        Eject(before);
        table.Version++;
        table.Services.Add(new Service { Name = "payments", Namespace = "shop", AllowedIds = { "spiffe://mesh.local/ns/shop/sa/payments" }, Endpoints = { new Endpoint { Address = "127.0.0.1:1003", SpiffeId = "spiffe://mesh.local/ns/shop/sa/payments" } } });
        routes = compiler.Compile(table);
        var after = routes.Resolve("orders")!.Endpoints[0];
        Assert.Same(before, after);
        Assert.Equal(1, routes.EjectedEndpoints);
        Assert.Null(routes.Resolve("orders")!.Pick());
    }

    [Fact]
    public void EndpointsWithABadAddressOrIdentityAreSkipped()
    {
        var table = Table(("orders", "shop", "not-an-address"));
        table.Services[0].Endpoints.Add(new Endpoint { Address = "127.0.0.1:1002", SpiffeId = "not a spiffe id" });
        var compiler = NewCompiler("shop");
        var routes = compiler.Compile(table);
        Assert.Null(routes.Resolve("orders"));
        Assert.Equal(7, routes.Version);
    }

    [Fact]
    public void AnEndpointWhoseIdentityIsNotAllowedToServeTheServiceIsNeverListed()
    {
        var table = Table(("payments", "shop", "127.0.0.1:1001"));
        // An impostor's registration that reached the table: the service's allowed identities leave it out.
        table.Services[0].Endpoints.Add(new Endpoint { Address = "127.0.0.1:1002", SpiffeId = "spiffe://mesh.local/ns/shop/sa/evil" });
        var compiler = NewCompiler("shop");
        var routes = compiler.Compile(table);
        var endpoint = Assert.Single(routes.Resolve("payments")!.Endpoints);
        Assert.Equal("spiffe://mesh.local/ns/shop/sa/payments", endpoint.IdentityText);
    }
}

public sealed class MeshConnectionPoolsTests
{
    [Fact]
    public async Task EachServerIdentityGetsItsOwnPoolAndTheSameIdentityTheSamePool()
    {
        await using var pools = new MeshConnectionPools(new SpiffeConnector(new WorkloadIdentity(TimeProvider.System), TimeProvider.System), TimeProvider.System);
        var orders = pools.For(MeshGuard.Spiffe.SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/orders"));
        var payments = pools.For(MeshGuard.Spiffe.SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/payments"));
        Assert.NotSame(orders, payments);
        Assert.Same(orders, pools.For(MeshGuard.Spiffe.SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/orders")));
    }
}
