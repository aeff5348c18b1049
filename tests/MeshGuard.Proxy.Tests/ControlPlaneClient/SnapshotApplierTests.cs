using System.Security.Cryptography.Pkcs;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;
using MeshGuard.Contracts;
using MeshGuard.Contracts.Snapshots;
using MeshGuard.Contracts.V1;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Proxy.Authorization;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.ControlPlaneClient;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Outbound.Resilience;
using MeshGuard.Proxy.Routing;
using MeshGuard.Proxy.Runtime;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshGuard.Proxy.Tests.ControlPlaneClient;

/// <summary>A snapshot is applied only if signed by the control plane of our bundle, for us, and newer; otherwise nothing changes.</summary>
public sealed class SnapshotApplierTests : IDisposable
{
    private const string Orders = "spiffe://mesh.local/ns/shop/sa/orders";
    private static readonly Caller Frontend = Caller.From(SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/frontend"));
    private readonly TestCa _ca = new();
    private readonly TempDirectory _state = new();
    private readonly SidecarConfigSource _config = new();
    private readonly SnapshotApplier _applier;
    private readonly StateFileWriter _stateFiles = new(NullLogger.Instance);
    private WorkloadIdentity _identity = null!;

    public SnapshotApplierTests() => _applier = CreateApplier(_ca, _state.Path, _config);

    // A sidecar of "orders" in the state directory given, as after a restart when the directory is reused.
    private SnapshotApplierTests(TestCa ca, TempDirectory state)
    {
        _ca = ca;
        _state = state;
        _applier = CreateApplier(ca, state.Path, _config);
    }

    private SnapshotApplier CreateApplier(TestCa ca, string stateDirectory, SidecarConfigSource config)
    {
        var identity = _identity = new WorkloadIdentity(TimeProvider.System, new SvidStore(stateDirectory, _stateFiles));
        identity.Publish(ca.IssueSvid(Orders), ca.Bundle, key: null);
        var settings = new ControlPlaneSettings([], stateDirectory);
        var pools = new MeshConnectionPools(new SpiffeConnector(identity, TimeProvider.System), TimeProvider.System);
        var routes = new RouteCompiler("shop", pools, () => new EndpointCircuit(OutboundResilience.Default, TimeProvider.System, new OutboundMetrics()));
        return new SnapshotApplier(identity, config, routes, new PeerConnections(NullLogger<PeerConnections>.Instance), settings, _stateFiles, TimeProvider.System,
            NullLogger<SnapshotApplier>.Instance);
    }

    public void Dispose()
    {
        _stateFiles.Dispose();
        _state.Dispose();
    }

    private static Snapshot Snapshot(long version, bool allowFrontend, string workload = Orders)
    {
        var rules = allowFrontend
            ? new[] { new PolicyRule { Name = "frontend", From = [new PolicySource { Identity = "spiffe://mesh.local/ns/shop/sa/frontend" }] } }
            : [];
        var policy = new AccessPolicy { Name = "orders-callers", Namespace = "shop", ServiceAccount = "orders", Action = PolicyAction.Allow, Rules = rules };
        return new Snapshot
        {
            Version = version,
            WorkloadId = workload,
            IssuedAtUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            MeshDefault = "deny",
            PoliciesJson = ByteString.CopyFrom(PolicyCodec.Serialize([policy])),
        };
    }

    private byte[] SignedByControlPlane(Snapshot snapshot) => SnapshotSignature.Sign(snapshot, _ca.IssueSvid(ControlPlaneIdentity.For("mesh.local").ToString()));

    private bool FrontendAllowed() => _config.Current!.Authorizer.Evaluate(Frontend, 8080, "GET", "/", new NoHeaders()).IsAllowed;

    [Fact]
    public void ABundleWithANewRootIsAdoptedAndKeptForARestartButOneThatWouldRefuseTheSidecarsOwnSvidRefusesTheSnapshot()
    {
        var next = new TestCa();
        var overlap = Snapshot(11, allowFrontend: true);
        overlap.TrustBundlePem = TrustBundle.Create("mesh.local", [_ca.Root, next.Root]).ToPem();
        Assert.True(_applier.TryApply(SignedByControlPlane(overlap), SnapshotSource.Stream));
        Assert.Equal(2, _identity.Current.Bundle.Roots.Count);
        Assert.True(_stateFiles.Flush(TimeSpan.FromSeconds(10)));
        var kept = Path.Combine(_state.Path, "bundle.pem");
        Assert.Equal(2, TrustBundle.FromPem(File.ReadAllText(kept)).Roots.Count);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(kept));

        var onlyNext = Snapshot(12, allowFrontend: false);
        onlyNext.TrustBundlePem = TrustBundle.Create("mesh.local", [next.Root]).ToPem();
        Assert.False(_applier.TryApply(SignedByControlPlane(onlyNext), SnapshotSource.Stream));
        Assert.Equal(11, _applier.Version);
        Assert.True(FrontendAllowed());
        Assert.Equal(2, _identity.Current.Bundle.Roots.Count);
        Assert.True(_stateFiles.Flush(TimeSpan.FromSeconds(10)));
        Assert.Equal(2, TrustBundle.FromPem(File.ReadAllText(kept)).Roots.Count);
    }

    [Fact]
    public void PoliciesRevocationsAndRoutesOfOneSnapshotArePublishedAsOneConfigAndARefusedOneLeavesThatConfigInForce()
    {
        var snapshot = Snapshot(10, allowFrontend: true);
        snapshot.RevokedIds.Add("spiffe://mesh.local/ns/shop/sa/stolen");
        snapshot.Services.Add(new Service
        {
            Name = "payments",
            Namespace = "shop",
            AllowedIds = { "spiffe://mesh.local/ns/shop/sa/payments" },
            Endpoints = { new Endpoint { Address = "127.0.0.1:1003", SpiffeId = "spiffe://mesh.local/ns/shop/sa/payments" } },
        });
        Assert.True(_applier.TryApply(SignedByControlPlane(snapshot), SnapshotSource.Stream));
        var applied = _config.Current!;
        Assert.Equal((10, 10), (applied.Version, applied.Routes.Version));
        Assert.True(applied.IsRevoked("spiffe://mesh.local/ns/shop/sa/stolen"));
        Assert.Equal(["shop/orders-callers"], applied.Authorizer.Policies);
        Assert.Equal("127.0.0.1:1003", Assert.Single(applied.Routes.Resolve("payments")!.Endpoints).Address);

        var forSomeoneElse = Snapshot(11, allowFrontend: false, workload: "spiffe://mesh.local/ns/shop/sa/payments");
        Assert.False(_applier.TryApply(SignedByControlPlane(forSomeoneElse), SnapshotSource.Stream));
        Assert.Same(applied, _config.Current);
    }

    [Fact]
    public void AppliesASnapshotSignedByTheControlPlaneAndKeepsItOnDiskOwnerOnly()
    {
        Assert.True(_applier.TryApply(SignedByControlPlane(Snapshot(10, allowFrontend: true)), SnapshotSource.Stream));
        Assert.True(FrontendAllowed());
        Assert.Equal(10, _applier.Version);
        Assert.True(_stateFiles.Flush(TimeSpan.FromSeconds(10)));
        var file = Path.Combine(_state.Path, "snapshot.cms");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
    }

    [Fact]
    public void RefusesATamperedSnapshotAndKeepsTheCurrentPolicy()
    {
        _applier.TryApply(SignedByControlPlane(Snapshot(10, allowFrontend: true)), SnapshotSource.Stream);
        var signed = SignedByControlPlane(Snapshot(11, allowFrontend: false));
        var cms = new SignedCms();
        cms.Decode(signed);
        var content = cms.ContentInfo.Content;
        // Flip one byte of the signed content where it sits inside the DER.
        var at = signed.AsSpan().IndexOf(content.AsSpan(0, 16)) + 3;
        signed[at] ^= 0x01;
        Assert.False(_applier.TryApply(signed, SnapshotSource.Stream));
        Assert.Equal(10, _applier.Version);
        Assert.True(FrontendAllowed());
        Assert.Equal(1, _applier.Refused);
    }

    [Fact]
    public void RefusesASnapshotSignedByAWorkloadInsteadOfTheControlPlane()
    {
        var signed = SnapshotSignature.Sign(Snapshot(10, allowFrontend: true), _ca.IssueSvid("spiffe://mesh.local/ns/shop/sa/frontend"));
        Assert.False(_applier.TryApply(signed, SnapshotSource.Stream));
        Assert.Null(_config.Current);
    }

    [Fact]
    public void RefusesASnapshotSignedByAForeignCaClaimingToBeTheControlPlane()
    {
        var foreign = new TestCa();
        var signed = SnapshotSignature.Sign(Snapshot(10, allowFrontend: true), foreign.IssueSvid(ControlPlaneIdentity.For("mesh.local").ToString()));
        Assert.False(_applier.TryApply(signed, SnapshotSource.Stream));
        Assert.Equal(0, _applier.Version);
    }

    [Fact]
    public void RefusesAReplayedOlderOrEqualVersion()
    {
        var older = SignedByControlPlane(Snapshot(10, allowFrontend: false));
        Assert.True(_applier.TryApply(SignedByControlPlane(Snapshot(11, allowFrontend: true)), SnapshotSource.Stream));
        Assert.False(_applier.TryApply(older, SnapshotSource.Stream));
        Assert.False(_applier.TryApply(SignedByControlPlane(Snapshot(11, allowFrontend: false)), SnapshotSource.Stream));
        Assert.Equal(11, _applier.Version);
        Assert.True(FrontendAllowed());
    }

    [Fact]
    public void RefusesASnapshotMeantForAnotherWorkload()
    {
        Assert.False(_applier.TryApply(SignedByControlPlane(Snapshot(10, allowFrontend: true, workload: "spiffe://mesh.local/ns/shop/sa/payments")), SnapshotSource.Stream));
        Assert.Null(_config.Current);
    }

    [Fact]
    public void RefusesGarbage() =>
        Assert.False(_applier.TryApply([0x30, 0x03, 0x02, 0x01, 0x00], SnapshotSource.Stream));

    [Fact]
    public void TheSnapshotOnDiskIsAppliedAgainAfterARestart()
    {
        _applier.TryApply(SignedByControlPlane(Snapshot(10, allowFrontend: true)), SnapshotSource.Stream);
        Assert.True(_stateFiles.Flush(TimeSpan.FromSeconds(10)));
        var restarted = new SnapshotApplierTests(_ca, _state);
        Assert.True(restarted._applier.TryApplyFromDisk());
        Assert.Equal(SnapshotSource.Disk, restarted._config.Current!.Source);
        Assert.True(restarted.FrontendAllowed());
    }
}
