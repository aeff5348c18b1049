using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Spiffe;

namespace MeshGuard.Policy.Tests.Engine;

/// <summary>On random policies and requests from a small world (so that they collide often), the compiled engine decides exactly as the reference evaluator.</summary>
public sealed class EngineAgreesWithReferenceProperty
{
    private static readonly string[] Namespaces = ["shop", "billing"];
    private static readonly string[] Accounts = ["frontend", "orders", "payments"];
    private static readonly int[] Ports = [8080, 9090];
    private static readonly string[] Methods = ["GET", "POST", "DELETE"];
    private static readonly string[] Patterns = ["*", "/orders", "/orders/*", "/payments", "/"];
    private static readonly string[] Paths = ["/orders", "/orders/", "/orders/1", "/payments", "/", "/other"];
    private static readonly string[] Tenants = ["acme", "globex"];

    public sealed record Scenario(AccessPolicy[] Policies, MeshDefault MeshDefault, ReferenceEvaluator.Request[] Requests)
    {
        public override string ToString() => $"{Policies.Length} policies, default {MeshDefault}, {Requests.Length} requests";
    }

    private static Gen<T[]> ArrayOf<T>(Gen<T> gen, int min, int max) =>
        Gen.Choose(min, max).SelectMany(n => gen.ArrayOf(n));

    private static readonly Gen<PolicySource> Source =
        Gen.OneOf(
            Gen.Elements(Namespaces).SelectMany(ns => Gen.Elements(Accounts).Select(sa => new PolicySource { Identity = $"spiffe://mesh.local/ns/{ns}/sa/{sa}" })),
            Gen.Elements(Namespaces).Select(ns => new PolicySource { Namespace = ns }));

    private static readonly Gen<PolicyDestination> Destination =
        from ports in ArrayOf(Gen.Elements(Ports), 0, 1)
        from methods in ArrayOf(Gen.Elements(Methods), 0, 2)
        from paths in ArrayOf(Gen.Elements(Patterns), 0, 2)
        select new PolicyDestination
        {
            Ports = ports,
            Methods = methods,
            Paths = paths.Select(p => PathPattern.TryParse(p, out var pattern, out _) ? pattern! : throw new InvalidOperationException()).ToArray(),
        };

    private static readonly Gen<HeaderCondition> Condition =
        ArrayOf(Gen.Elements(Tenants), 1, 2).Select(values => new HeaderCondition { Header = "x-tenant", Values = values });

    private static Gen<PolicyRule> Rule(int index) =>
        from sources in ArrayOf(Source, 1, 2)
        from to in ArrayOf(Destination, 0, 2)
        from when in ArrayOf(Condition, 0, 1)
        select new PolicyRule { Name = $"rules[{index}]", From = sources, To = to, When = when };

    private static Gen<AccessPolicy> Policy(int index) =>
        from ns in Gen.Elements(Namespaces)
        from sa in Gen.Elements<string?>(null, "orders", "payments")
        from action in Gen.Elements(PolicyAction.Allow, PolicyAction.Deny)
        from mode in Gen.Elements(PolicyMode.Enforce, PolicyMode.Enforce, PolicyMode.Audit)
        from ruleCount in Gen.Choose(0, 3)
        from rules in Gen.CollectToArray(Enumerable.Range(0, ruleCount).Select(Rule))
        select new AccessPolicy { Name = $"p{index}", Namespace = ns, ServiceAccount = sa, Action = action, Mode = mode, Rules = rules.ToArray() };

    private static readonly Gen<ReferenceEvaluator.Request> Request =
        from callerNs in Gen.Elements(Namespaces)
        from callerSa in Gen.Elements(Accounts)
        from ns in Gen.Elements(Namespaces)
        from sa in Gen.Elements("orders", "payments")
        from port in Gen.Elements(Ports)
        from method in Gen.Elements(Methods)
        from path in Gen.Elements(Paths)
        from tenant in Gen.Elements<string?>(null, "acme", "globex", "initech")
        select new ReferenceEvaluator.Request(
            $"spiffe://mesh.local/ns/{callerNs}/sa/{callerSa}", callerNs, ns, sa, port, method, path,
            tenant is null ? [] : new Dictionary<string, string> { ["X-Tenant"] = tenant });

    private static readonly Gen<Scenario> Scenarios =
        from count in Gen.Choose(0, 6)
        from policies in Gen.CollectToArray(Enumerable.Range(0, count).Select(Policy))
        from meshDefault in Gen.Elements(MeshDefault.Deny, MeshDefault.AllowAuthenticated, MeshDefault.Allow)
        from requests in ArrayOf(Request, 1, 20)
        select new Scenario(policies.ToArray(), meshDefault, requests);

    [Property(MaxTest = 400)]
    public Property TheCompiledEngineAgreesWithTheReferenceEvaluator() =>
        Prop.ForAll(Scenarios.ToArbitrary(), scenario =>
        {
            var set = new PolicySet(scenario.Policies, scenario.MeshDefault);
            foreach (var request in scenario.Requests)
            {
                var caller = Caller.From(SpiffeId.Parse(request.CallerId));
                var decision = set.For(request.Ns, request.Sa).Evaluate(caller, request.Port, request.Method, request.Path, new DictionaryHeaders(request.Headers));
                var expected = ReferenceEvaluator.Decide(scenario.Policies, scenario.MeshDefault, request, includeAudit: false);
                if ((decision.Verdict, decision.Policy, decision.Rule) != expected)
                {
                    return false;
                }
                var hasAudit = scenario.Policies.Any(p => p.Mode == PolicyMode.Audit && p.Selects(request.Ns, request.Sa));
                if (!hasAudit)
                {
                    if (decision.Audit != AuditVerdict.None)
                    {
                        return false;
                    }
                    continue;
                }
                var audit = ReferenceEvaluator.Decide(scenario.Policies, scenario.MeshDefault, request, includeAudit: true);
                var auditVerdict = audit.Verdict == Verdict.Allow ? AuditVerdict.Allow : AuditVerdict.Deny;
                if ((decision.Audit, decision.AuditPolicy, decision.AuditRule) != (auditVerdict, audit.Policy, audit.Rule))
                {
                    return false;
                }
            }
            return true;
        });
}
