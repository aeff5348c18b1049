using BenchmarkDotNet.Attributes;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Spiffe;

namespace MeshGuard.Benchmarks;

/// <summary>
/// One authorization decision against a workload whose policies hold 10 or 10,000 rules: the caller's
/// own rule sits last, so an engine that scanned rules would pay for all of them.
/// </summary>
[MemoryDiagnoser]
public class PolicyDecisionBenchmarks
{
    private WorkloadAuthorizer _authorizer = null!;
    private Caller _allowed = null!;
    private Caller _unknown = null!;

    [Params(10, 10_000)]
    public int Rules { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rules = new List<PolicyRule>(Rules);
        for (var i = 0; i < Rules; i++)
        {
            if (!PathPattern.TryParse($"/api/{i}/*", out var path, out var error))
            {
                throw new InvalidOperationException(error);
            }
            rules.Add(new PolicyRule
            {
                Name = $"r{i}",
                From = [new PolicySource { Identity = $"spiffe://mesh.local/ns/team{i % 50}/sa/client{i}" }, new PolicySource { Namespace = $"ns{i}" }],
                To = [new PolicyDestination { Ports = [8080], Methods = ["GET", "POST"], Paths = [path!] }],
            });
        }
        var last = Rules - 1;
        var policy = new AccessPolicy { Name = "big", Namespace = "shop", ServiceAccount = "orders", Action = PolicyAction.Allow, Rules = rules };
        var deny = new AccessPolicy
        {
            Name = "deny",
            Namespace = "shop",
            ServiceAccount = "orders",
            Action = PolicyAction.Deny,
            Rules = [new PolicyRule { Name = "blocked", From = [new PolicySource { Namespace = "blocked" }] }],
        };
        _authorizer = new PolicySet([deny, policy], MeshDefault.Deny).For("shop", "orders");
        _allowed = Caller.From(SpiffeId.Parse($"spiffe://mesh.local/ns/team{last % 50}/sa/client{last}"));
        _unknown = Caller.From(SpiffeId.Parse("spiffe://mesh.local/ns/elsewhere/sa/stranger"));
        if (!_authorizer.Evaluate(_allowed, 8080, "GET", $"/api/{last}/items", new NoHeaders()).IsAllowed)
        {
            throw new InvalidOperationException("benchmark setup is wrong: the allowed caller is denied");
        }
        _path = $"/api/{last}/items";
    }

    private string _path = "";

    [Benchmark(Description = "allow: caller's rule matches")]
    public bool Allow() => _authorizer.Evaluate(_allowed, 8080, "GET", _path, new NoHeaders()).IsAllowed;

    [Benchmark(Description = "deny: no rule names the caller")]
    public bool Deny() => _authorizer.Evaluate(_unknown, 8080, "GET", _path, new NoHeaders()).IsAllowed;
}
