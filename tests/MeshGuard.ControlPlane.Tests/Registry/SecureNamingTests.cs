using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.ControlPlane.Tests.Registry;

/// <summary>Which identities may serve a service is the platform's to say; the registry takes no other claim and never hands one identity's address to another.</summary>
public sealed class SecureNamingTests : IDisposable
{
    private static readonly SpiffeId Payments = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/payments");
    private static readonly SpiffeId Evil = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/evil");
    private static readonly SpiffeId PaymentsV2 = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/payments-v2");
    private readonly TempDirectory _temp = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    public void Dispose() => _temp.Dispose();

    private ServiceRegistry Registry(string bindings = "")
    {
        var data = new DataDirectory(_temp.Path);
        Directory.CreateDirectory(data.StateDirectory);
        File.WriteAllText(data.ServiceBindings, bindings);
        var store = new ServiceBindingStore(data, _time, NullLogger<ServiceBindingStore>.Instance);
        return new ServiceRegistry(data, naming: new SecureNaming(store, TimeSpan.FromHours(1), _time), time: _time);
    }

    private static IEnumerable<string> Endpoints(ServiceRegistry registry, string service) =>
        registry.Current.Services.Where(s => s.Name == service).SelectMany(s => s.Endpoints).Select(e => $"{e.Address}={e.SpiffeId}");

    [Fact]
    public void AServiceIsServedByTheServiceAccountOfItsNameAndNoOtherIdentityMayClaimIt()
    {
        var registry = Registry();
        Assert.Null(registry.Register("payments", Payments, "10.0.0.1:15006"));
        var refusal = registry.Register("payments", Evil, "10.0.0.9:15006");
        Assert.Contains("may not serve service 'payments' of namespace 'shop'", refusal, StringComparison.Ordinal);
        Assert.Equal(["10.0.0.1:15006=" + Payments], Endpoints(registry, "payments"));
    }

    [Fact]
    public void AnExplicitBindingLetsAnotherIdentityOfTheNamespaceServeTheService()
    {
        var registry = Registry("# payments is moving to its v2 account\nshop/payments spiffe://mesh.local/ns/shop/sa/payments-v2\n");
        Assert.Null(registry.Register("payments", PaymentsV2, "10.0.0.2:15006"));
        Assert.NotNull(registry.Register("payments", Evil, "10.0.0.9:15006"));
        Assert.Null(registry.Register("payments", Payments, "10.0.0.1:15006"));
        Assert.Equal(2, Endpoints(registry, "payments").Count());
    }

    [Fact]
    public void AnAddressAnotherIdentityHoldsIsNotTakenUntilThatIdentityIsGoneForThreeLifetimes()
    {
        var registry = Registry();
        Assert.Null(registry.Register("payments", Payments, "10.0.0.1:15006"));
        // evil may serve its own service, but not at payments' address.
        var refusal = registry.Register("evil", Evil, "10.0.0.1:15006");
        Assert.Equal($"10.0.0.1:15006 is registered to {Payments}: one identity never takes another's address", refusal);
        Assert.Equal(["10.0.0.1:15006=" + Payments], Endpoints(registry, "payments"));
        Assert.Empty(Endpoints(registry, "evil"));

        _time.Advance(TimeSpan.FromHours(2));
        Assert.Null(registry.Register("payments", Payments, "10.0.0.1:15006")); // renewed: still its address
        _time.Advance(TimeSpan.FromHours(2.5));
        Assert.NotNull(registry.Register("evil", Evil, "10.0.0.1:15006"));
        _time.Advance(TimeSpan.FromHours(1));
        // payments has not renewed for three lifetimes: the address is free, and leaves payments' entry.
        Assert.Null(registry.Register("evil", Evil, "10.0.0.1:15006"));
        Assert.Empty(Endpoints(registry, "payments"));
        Assert.Equal(["10.0.0.1:15006=" + Evil], Endpoints(registry, "evil"));
    }

    [Theory]
    [InlineData("shop/payments", "test:1: expected 'NAMESPACE/SERVICE SPIFFE-ID'")]
    [InlineData("payments spiffe://mesh.local/ns/shop/sa/x", "test:1: expected 'NAMESPACE/SERVICE SPIFFE-ID'")]
    [InlineData("\nshop/payments spiffe://mesh.local", "test:2: 'spiffe://mesh.local' is not a workload SPIFFE ID")]
    [InlineData("shop/payments spiffe://mesh.local/ns/billing/sa/x", "test:1: spiffe://mesh.local/ns/billing/sa/x is not of namespace 'shop'")]
    public void ABindingsFileWithAMistakeIsRefusedWholeWithLineAndReason(string text, string expected)
    {
        Assert.Same(ServiceBindings.None, ServiceBindings.Parse(text, "test", out var error));
        Assert.StartsWith(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void TheAllowedIdentitiesOfAServiceAreItsOwnAccountThenTheBoundOnes()
    {
        var bindings = ServiceBindings.Parse("shop/payments spiffe://mesh.local/ns/shop/sa/payments-v2", "test", out _);
        Assert.Equal([Payments.ToString(), PaymentsV2.ToString()], bindings.AllowedFor("payments", "shop", "mesh.local"));
        Assert.Equal([SpiffeId.ForWorkload("mesh.local", "shop", "orders").ToString()], bindings.AllowedFor("orders", "shop", "mesh.local"));
    }
}
