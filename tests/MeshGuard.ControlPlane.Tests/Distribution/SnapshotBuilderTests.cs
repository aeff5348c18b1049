using MeshGuard.Contracts.V1;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Policy.Parsing;

namespace MeshGuard.ControlPlane.Tests.Distribution;

public sealed class SnapshotBuilderTests
{
    private const string Policies = """
        apiVersion: meshguard.io/v1alpha1
        kind: AccessPolicy
        metadata: { name: orders-callers, namespace: shop }
        spec:
          selector: { serviceAccount: orders }
          action: allow
          rules:
            - name: frontend-orders
              from:
                - identity: spiffe://mesh.local/ns/shop/sa/frontend
        ---
        apiVersion: meshguard.io/v1alpha1
        kind: AccessPolicy
        metadata: { name: payments-callers, namespace: shop }
        spec:
          selector: { serviceAccount: payments }
          action: allow
          rules:
            - name: orders-pay
              from:
                - identity: spiffe://mesh.local/ns/shop/sa/orders
        """;

    private static MeshConfig Config(long version, params string[] revoked)
    {
        var set = new PolicySet(PolicyParser.Parse(Policies, "test.yaml").Policies, MeshDefault.AllowAuthenticated);
        var services = new ServiceTable { Version = 3 };
        var orders = new Service { Name = "orders", Namespace = "shop" };
        orders.Endpoints.Add(new Endpoint { Address = "10.0.0.1:15006", SpiffeId = "spiffe://mesh.local/ns/shop/sa/orders" });
        services.Services.Add(orders);
        var list = RevocationList.Parse(string.Join('\n', revoked), "test", out _);
        return new MeshConfig(version, new PolicySnapshot(1, set, []), services, services, list, ServiceBindings.None, DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000));
    }

    [Fact]
    public void EachSidecarsBytesParseAsItsWholeSnapshotWithOnlyThePoliciesSelectingIt()
    {
        using var ca = CertificateAuthority.FromMaterial(CertificateAuthority.CreateMaterial("mesh.local", TimeProvider.System), "mesh.local", "test", TimeProvider.System);
        var builder = new SnapshotBuilder(ca);
        var config = Config(42, "spiffe://mesh.local/ns/shop/sa/old");

        foreach (var (sa, policy) in new[] { ("orders", "shop/orders-callers"), ("payments", "shop/payments-callers") })
        {
            var snapshot = Snapshot.Parser.ParseFrom(builder.Build(config, $"spiffe://mesh.local/ns/shop/sa/{sa}", "shop", sa));
            Assert.Equal(42, snapshot.Version);
            Assert.Equal($"spiffe://mesh.local/ns/shop/sa/{sa}", snapshot.WorkloadId);
            Assert.Equal("allow-authenticated", snapshot.MeshDefault);
            Assert.Equal(1_700_000_000_000, snapshot.IssuedAtUnixMs);
            Assert.Equal(ca.Bundle.ToPem(), snapshot.TrustBundlePem);
            Assert.Equal(config.Services.Services, snapshot.Services);
            Assert.Equal(["spiffe://mesh.local/ns/shop/sa/old"], snapshot.RevokedIds);
            var selected = Assert.Single(PolicyCodec.Deserialize(snapshot.PoliciesJson.ToByteArray()));
            Assert.Equal(policy, selected.Id);
        }
    }

    [Fact]
    public void ANewConfigIsBuiltFreshAndAStreamStillOnTheOldOneGetsTheOld()
    {
        using var ca = CertificateAuthority.FromMaterial(CertificateAuthority.CreateMaterial("mesh.local", TimeProvider.System), "mesh.local", "test", TimeProvider.System);
        var builder = new SnapshotBuilder(ca);
        var first = Config(1);
        var second = Config(2, "spiffe://mesh.local/ns/shop/sa/frontend");
        Assert.Empty(Snapshot.Parser.ParseFrom(builder.Build(first, "spiffe://mesh.local/ns/shop/sa/orders", "shop", "orders")).RevokedIds);
        var newer = Snapshot.Parser.ParseFrom(builder.Build(second, "spiffe://mesh.local/ns/shop/sa/orders", "shop", "orders"));
        Assert.Equal(2, newer.Version);
        Assert.Single(newer.RevokedIds);
        var older = Snapshot.Parser.ParseFrom(builder.Build(first, "spiffe://mesh.local/ns/shop/sa/orders", "shop", "orders"));
        Assert.Equal(1, older.Version);
        Assert.Empty(older.RevokedIds);
    }
}
