using System.Collections.Frozen;
using System.Text;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Requests;
using MeshGuard.Proxy.Authorization;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.Inbound;
using MeshGuard.Proxy.Routing;
using MeshGuard.Proxy.Telemetry;
using MeshGuard.Spiffe;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Primitives;

namespace MeshGuard.Proxy.Tests.Inbound;

/// <summary>
/// The one inbound authorizer: no config denies (fail closed), a revocation outranks a policy that allows, a
/// permitted request carries its proof, and every decision (malformed, connection, no config included) reaches the
/// decision log and the metrics once.
/// </summary>
public sealed class InboundAuthorizerTests
{
    private static readonly SpiffeId Frontend = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/frontend");

    private readonly SidecarConfigSource _config = new();
    private readonly DecisionLog _decisions = new();
    private readonly AuthorizationMetrics _metrics = new();
    private readonly InboundAuthorizer _authorizer;
    private readonly PeerIdentityFeature _peer = new(Frontend, StringValues.Empty);

    public InboundAuthorizerTests() =>
        _authorizer = new InboundAuthorizer(_config, _decisions, _metrics, TimeProvider.System, NullLogger<InboundAuthorizer>.Instance);

    /// <summary>Publishes a config that allows everything, with <paramref name="revoked"/> revoked.</summary>
    private void PublishAllowAll(params string[] revoked) =>
        _config.Publish(new SidecarConfig(
            1, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, SnapshotSource.Stream, new PolicySet([], MeshDefault.Allow).For("shop", "orders"),
            revoked.ToFrozenSet(StringComparer.Ordinal), ServiceRoutes.Empty));

    private static CanonicalRequest Request(string method, string target)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()!.RawTarget = target;
        Assert.True(CanonicalRequest.TryRead(context, PathNormalization.Default, out var request, out var refusal), refusal);
        return request;
    }

    private InboundVerdict Authorize(string method = "GET", string target = "/orders/1") =>
        _authorizer.Authorize(_peer, 8080, Request(method, target), new HeaderDictionary());

    private string Metrics()
    {
        var text = new StringBuilder();
        _metrics.WriteTo(text);
        return text.ToString();
    }

    [Fact]
    public void BeforeAnyConfigEveryRequestAndConnectionIsDeniedForWantOfConfigAndLoggedAsSuch()
    {
        var verdict = Authorize();
        Assert.Null(verdict.Permit);
        Assert.Equal(Decision.NoConfig, verdict.Decision);
        Assert.Equal(Decision.NoConfig, _authorizer.AuthorizeConnection(_peer, 6379));

        var recent = _decisions.Recent(2);
        Assert.Equal([("TCP", ":6379"), ("GET", "/orders/1")], recent.Select(r => (r.Method, r.Path)));
        Assert.All(recent, r => Assert.Equal(("mesh-config", "no-config-yet"), (r.Decision.Policy, r.Decision.Rule)));
        Assert.Contains("meshguard_authz_decisions_total{decision=\"deny\",policy=\"mesh-config\",rule=\"no-config-yet\"} 2", Metrics(), StringComparison.Ordinal);
    }

    [Fact]
    public void APermittedRequestCarriesTheProofOfWhatWasDecidedOn()
    {
        PublishAllowAll();
        var verdict = Authorize("POST", "/orders/./a/../7");
        var permit = Assert.IsType<AuthorizedRequest>(verdict.Permit);
        Assert.Equal(("POST", "/orders/7"), (permit.Request.Method, permit.Request.Path));
        Assert.Equal(verdict.Decision, permit.Decision);
        Assert.True(verdict.Decision.IsAllowed);
        Assert.Equal("/orders/7", Assert.Single(_decisions.Recent(5)).Path);
        Assert.True(permit.IsIssued);
        Assert.Equal(permit.Request.Path, permit.Required().Request.Path);
    }

    [Fact]
    public void OnlyTheAuthorizersAllowMakesAProofAndADefaultOneIsRefused()
    {
        PublishAllowAll();
        var permitted = Authorize("GET", "/orders/1");
        var denied = permitted.Decision with { Verdict = MeshGuard.Policy.Engine.Verdict.Deny };
        Assert.Throws<ArgumentException>(() => new AuthorizedRequest(permitted.Permit!.Value.Request, denied));
        Assert.False(default(AuthorizedRequest).IsIssued);
        Assert.Throws<InvalidOperationException>(() => default(AuthorizedRequest).Required());
    }

    [Fact]
    public void ARevokedCallerIsDeniedEvenWhereThePolicyAllowsItRequestsAndConnectionsAlike()
    {
        PublishAllowAll(Frontend.ToString());
        var verdict = Authorize();
        Assert.Null(verdict.Permit);
        Assert.Equal(Decision.Revoked, verdict.Decision);
        Assert.Equal(Decision.Revoked, _authorizer.AuthorizeConnection(_peer, 6379));
        Assert.Contains("policy=\"mesh-revocations\",rule=\"revoked\"} 2", Metrics(), StringComparison.Ordinal);
    }

    [Fact]
    public void AMalformedRequestIsRecordedWithItsRawPathAndTheRuleItBroke()
    {
        PublishAllowAll();
        var decision = _authorizer.Refuse(_peer, "GET", "/a%2fb", "target-escaped-slash");
        Assert.False(decision.IsAllowed);
        var record = Assert.Single(_decisions.Recent(5));
        Assert.Equal(("/a%2fb", "mesh-request-rules", "target-escaped-slash"), (record.Path, record.Decision.Policy, record.Decision.Rule));
    }
}
