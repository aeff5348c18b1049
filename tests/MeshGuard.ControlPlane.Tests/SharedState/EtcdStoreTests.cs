using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Hosting;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.SharedState;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Ctl.Demo;
using MeshGuard.Etcd;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.ControlPlane.Tests.SharedState;

/// <summary>The store's transactions against a real etcd: tokens spent once, leadership held by one replica, revocations merged.</summary>
public sealed class EtcdStoreTests : IAsyncLifetime
{
    private static readonly SpiffeId Orders = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/orders");
    private EtcdServer _etcd = null!;
    private EtcdConnection _connection = null!;

    public async Task InitializeAsync()
    {
        _etcd = await EtcdServer.StartAsync(LocalMesh.FreePorts(2));
        _connection = new EtcdConnection(StoreLocation.Parse(_etcd.Store, out _)!);
    }

    [Fact]
    public async Task OfFiftyConcurrentSpendsOfOneTokenExactlyOneSucceeds()
    {
        var tokens = new EtcdJoinTokens(_connection, TimeProvider.System);
        var token = await tokens.CreateAsync(Orders, TimeSpan.FromMinutes(1), CancellationToken.None);
        Assert.Equal(JoinTokenStatus.Valid, (await tokens.FindAsync(token, CancellationToken.None)).Status);
        // Each spender its own connection, as separate replicas would have.
        var spenders = Enumerable.Range(0, 50).Select(async _ =>
        {
            using var connection = new EtcdConnection(_connection.Location);
            return await new EtcdJoinTokens(connection, TimeProvider.System).ConsumeAsync(token, CancellationToken.None);
        });
        var results = await Task.WhenAll(spenders);
        var valid = Assert.Single(results, r => r.Status == JoinTokenStatus.Valid);
        Assert.Equal(Orders, valid.SpiffeId);
        Assert.All(results.Where(r => r.Status != JoinTokenStatus.Valid), r => Assert.Equal(JoinTokenStatus.AlreadyUsed, r.Status));
        Assert.Equal(JoinTokenStatus.AlreadyUsed, (await tokens.FindAsync(token, CancellationToken.None)).Status);
        // Only the hash is stored.
        var stored = await _connection.RangePrefixAsync(EtcdKeys.Root, CancellationToken.None);
        Assert.DoesNotContain(stored.Kvs, kv => kv.Key.ToStringUtf8().Contains(token, StringComparison.Ordinal) || kv.Value.ToStringUtf8().Contains(token, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ExpiredTokensAreRefusedAsExpiredAndSweptWithTheirSpentMarkers()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var tokens = new EtcdJoinTokens(_connection, time);
        var expiring = await tokens.CreateAsync(Orders, TimeSpan.FromMinutes(1), CancellationToken.None);
        var spent = await tokens.CreateAsync(Orders, TimeSpan.FromMinutes(1), CancellationToken.None);
        var lasting = await tokens.CreateAsync(Orders, TimeSpan.FromHours(1), CancellationToken.None);
        Assert.Equal(JoinTokenStatus.Valid, (await tokens.ConsumeAsync(spent, CancellationToken.None)).Status);
        time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(JoinTokenStatus.Expired, (await tokens.ConsumeAsync(expiring, CancellationToken.None)).Status);

        Assert.Equal(2, await tokens.SweepExpiredAsync(CancellationToken.None));
        Assert.Equal(JoinTokenStatus.Unknown, (await tokens.FindAsync(expiring, CancellationToken.None)).Status);
        Assert.Equal(JoinTokenStatus.Unknown, (await tokens.FindAsync(spent, CancellationToken.None)).Status);
        Assert.Equal(JoinTokenStatus.Valid, (await tokens.FindAsync(lasting, CancellationToken.None)).Status);
    }

    [Fact]
    public async Task OneOfTwoReplicasLeadsAndTheOtherTakesOverWhenItStops()
    {
        var settingsA = new ControlPlaneSettings("/nonexistent", "mesh.local", "127.0.0.1", 1, 2, 3, 4, TimeSpan.FromHours(1), MeshGuard.Policy.Engine.MeshDefault.Deny);
        var settingsB = settingsA with { GrpcPort = 5 };
        using var connectionB = new EtcdConnection(_connection.Location);
        using var key = NewStoreKey();
        using var ca = await EtcdCertificateAuthority.LoadOrCreateAsync(_connection, key, "mesh.local", TimeProvider.System, CancellationToken.None);
        using var a = new EtcdLeadership(_connection, new EtcdJoinTokens(_connection, TimeProvider.System), key, ca, settingsA, TimeProvider.System, NullLogger<EtcdLeadership>.Instance);
        using var b = new EtcdLeadership(connectionB, new EtcdJoinTokens(connectionB, TimeProvider.System), key, ca, settingsB, TimeProvider.System, NullLogger<EtcdLeadership>.Instance);
        await a.StartAsync(CancellationToken.None);
        await b.StartAsync(CancellationToken.None);
        Assert.True(await Eventually.TrueAsync(() => a.IsLeader || b.IsLeader), "nobody took the lead");
        await Task.Delay(TimeSpan.FromSeconds(4)); // more than a tick: the other tried and was refused
        Assert.True(a.IsLeader ^ b.IsLeader, $"leaders: a={a.IsLeader} b={b.IsLeader}");

        var (leader, follower) = a.IsLeader ? (a, b) : (b, a);
        var holder = (await _connection.GetAsync(EtcdKeys.Leader, CancellationToken.None))!.Value.Value;
        Assert.Contains(leader == a ? "grpc 127.0.0.1:2" : "grpc 127.0.0.1:5", holder, StringComparison.Ordinal);
        await leader.StopAsync(CancellationToken.None);
        Assert.True(await Eventually.TrueAsync(() => follower.IsLeader, TimeSpan.FromSeconds(10)), "the follower did not take over from a stopped leader");
        await follower.StopAsync(CancellationToken.None);
    }

    private static StoreKey NewStoreKey() => StoreKey.FromBase64(Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)), "test");

    private static SvidSigningRequest Csr()
    {
        using var key = SvidKey.CreateKey();
        Assert.True(SvidSigningRequest.TryParse(SvidKey.CreateSigningRequestPem(key, Orders), out var csr, out var error), error);
        return csr!;
    }

    [Fact]
    public async Task TheIntermediateIsRenewedInEtcdOnceTwoThirdsOfItsLifeHavePassedAndAReplicaSignsWithTheNewOne()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var key = NewStoreKey();
        using var replica = await EtcdCertificateAuthority.LoadOrCreateAsync(_connection, key, "mesh.local", time, CancellationToken.None);
        var first = replica.Intermediate.ExportCertificatePem();
        var bundle = replica.Bundle.ToPem();
        using var early = replica.IssueSvid(Csr(), Orders, TimeSpan.FromHours(1));

        time.Advance(TimeSpan.FromDays(240)); // 365-day intermediate: due after 243 1/3 days
        Assert.False(await EtcdCertificateAuthority.RenewIntermediateIfDueAsync(_connection, key, "mesh.local", time, CancellationToken.None));
        Assert.False(await EtcdCertificateAuthority.FollowAsync(_connection, key, replica, CancellationToken.None));
        time.Advance(TimeSpan.FromDays(4));
        Assert.True(await EtcdCertificateAuthority.RenewIntermediateIfDueAsync(_connection, key, "mesh.local", time, CancellationToken.None));
        Assert.False(await EtcdCertificateAuthority.RenewIntermediateIfDueAsync(_connection, key, "mesh.local", time, CancellationToken.None)); // the new one is young

        Assert.True(await EtcdCertificateAuthority.FollowAsync(_connection, key, replica, CancellationToken.None));
        Assert.NotEqual(first, replica.Intermediate.ExportCertificatePem());
        Assert.Equal(bundle, replica.Bundle.ToPem()); // roots only: sidecars need nothing new
        Assert.True(replica.Intermediate.NotAfter.ToUniversalTime() > time.GetUtcNow().AddDays(364));
        using var late = replica.IssueSvid(Csr(), Orders, TimeSpan.FromHours(1));
        Assert.True(X509SvidVerifier.Verify(late, [replica.Intermediate], replica.Bundle, time.GetUtcNow()).IsValid);
        Assert.EndsWith(replica.Intermediate.ExportCertificatePem() + "\n", replica.ChainPem(late), StringComparison.Ordinal);
        // An SVID the old intermediate issued keeps its own chain.
        Assert.EndsWith(first.TrimEnd() + "\n", replica.ChainPem(early), StringComparison.Ordinal);

        // The sealed keys stay sealed.
        var stored = (await _connection.GetAsync(EtcdKeys.Ca, CancellationToken.None))!.Value.Value;
        Assert.DoesNotContain("PRIVATE KEY", stored, StringComparison.Ordinal);
    }

    [Fact]
    public async Task VersionsCountFromTheFirstReplicasStartSoTheyExceedTheFileStoresAndAgreeAcrossReplicas()
    {
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(); // a file-store version made just before the move
        var first = await EtcdVersionBase.ReadOrCreateAsync(_connection, TimeProvider.System, CancellationToken.None);
        var later = new FakeTimeProvider(DateTimeOffset.UtcNow.AddHours(1));
        using var other = new EtcdConnection(_connection.Location);
        var second = await EtcdVersionBase.ReadOrCreateAsync(other, later, CancellationToken.None);
        Assert.Equal(first, second);
        Assert.True(first.VersionAt(1) > before);
        Assert.True(first.VersionAt(8) > first.VersionAt(7));
    }

    [Fact]
    public async Task ARenewalRefreshesItsRegistrationAtMostEveryHalfLifetimeAndTheSweepRemovesSidecarsGoneForThreeLifetimes()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var state = new EtcdMeshState(_connection, TimeProvider.System, NullLogger<EtcdMeshState>.Instance);
        await state.LoadAsync(CancellationToken.None);
        var settings = new ControlPlaneSettings("/nonexistent", "mesh.local", "127.0.0.1", 1, 2, 3, 4, TimeSpan.FromHours(1), MeshGuard.Policy.Engine.MeshDefault.Deny);
        using var data = new TempDirectory();
        var bindings = new ServiceBindingStore(new DataDirectory(data.Path), time, NullLogger<ServiceBindingStore>.Instance, fromFile: false);
        var registrar = new EtcdEndpointRegistrar(_connection, state, new SecureNaming(bindings, settings.SvidTtl, time), settings, time);
        var frontend = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/frontend");
        var ordersKey = EtcdKeys.Registration("shop", "orders", "10.0.0.1:15006");
        await registrar.RegisterAsync("orders", Orders, "10.0.0.1:15006", CancellationToken.None);
        await registrar.RegisterAsync("frontend", frontend, "10.0.0.2:15006", CancellationToken.None);
        Assert.True(await Eventually.TrueAsync(() => EtcdEndpointRegistrar.Endpoints(state.Current).Count == 2), "the view never held both registrations");

        var written = (await _connection.GetAsync(ordersKey, CancellationToken.None))!.Value.ModRevision;
        time.Advance(TimeSpan.FromMinutes(20));
        await registrar.RegisterAsync("orders", Orders, "10.0.0.1:15006", CancellationToken.None);
        Assert.Equal(written, (await _connection.GetAsync(ordersKey, CancellationToken.None))!.Value.ModRevision); // seen 20 min ago: nothing written
        time.Advance(TimeSpan.FromMinutes(20));
        await registrar.RegisterAsync("orders", Orders, "10.0.0.1:15006", CancellationToken.None);
        Assert.True((await _connection.GetAsync(ordersKey, CancellationToken.None))!.Value.ModRevision > written);

        time.Advance(TimeSpan.FromHours(2.5)); // frontend last seen 3 h 10 min ago, orders 2 h 30 min ago
        Assert.Equal(1, await EtcdEndpointRegistrar.SweepStaleAsync(_connection, settings.SvidTtl * 3, time, CancellationToken.None));
        Assert.True(await Eventually.TrueAsync(() => EtcdEndpointRegistrar.Endpoints(state.Current) is [{ Service: "orders" }]), "the sweep left the wrong endpoints");
    }

    [Fact]
    public async Task ConcurrentRevocationsThroughTheStoreAllLand()
    {
        var ids = Enumerable.Range(0, 8).Select(i => SpiffeId.Parse($"spiffe://mesh.local/ns/shop/sa/app{i}")).ToList();
        await Task.WhenAll(ids.Select(async id =>
        {
            using var connection = new EtcdConnection(_connection.Location);
            await EtcdRevocations.UpdateAsync(connection, id, revoke: true, CancellationToken.None);
        }));
        Assert.Equal(ids.Select(static i => i.ToString()).Order(StringComparer.Ordinal), (await EtcdRevocations.ReadAsync(_connection, CancellationToken.None)).Ids.Select(static i => i.ToString()));
        await EtcdRevocations.UpdateAsync(_connection, ids[0], revoke: false, CancellationToken.None);
        Assert.DoesNotContain(ids[0], (await EtcdRevocations.ReadAsync(_connection, CancellationToken.None)).Ids);
    }

    public async Task DisposeAsync()
    {
        _connection.Dispose();
        await _etcd.DisposeAsync();
    }
}
