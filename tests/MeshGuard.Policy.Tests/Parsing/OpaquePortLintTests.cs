using MeshGuard.Policy.Parsing;

namespace MeshGuard.Policy.Tests.Parsing;

public sealed class OpaquePortLintTests
{
    private const string Policies = """
        apiVersion: meshguard.io/v1alpha1
        kind: AccessPolicy
        metadata: { name: db-guard, namespace: shop }
        spec:
          selector: { serviceAccount: orders }
          action: deny
          rules:
            - name: no-deletes
              from: [ { namespace: shop } ]
              to: [ { methods: [DELETE] } ]
            - name: web-only
              from: [ { namespace: shop } ]
              to: [ { ports: [8080], paths: ["/admin"] } ]
        ---
        apiVersion: meshguard.io/v1alpha1
        kind: AccessPolicy
        metadata: { name: db-clients, namespace: shop }
        spec:
          selector: { serviceAccount: orders }
          action: allow
          rules:
            - name: acme-only
              from: [ { namespace: shop } ]
              to: [ { ports: [6379] } ]
              when: [ { header: x-tenant, values: [acme] } ]
            - name: plain
              from: [ { namespace: shop } ]
              to: [ { ports: [6379] } ]
        """;

    [Fact]
    public void RulesNamingMethodsPathsOrHeadersThatReachAnOpaquePortAreExplained()
    {
        var file = PolicyParser.Parse(Policies, "db.yaml");
        Assert.True(file.IsValid, string.Join("\n", file.Errors));
        Assert.Equal(
            [
                "db.yaml: policy shop/db-guard rule no-deletes: names methods, paths or headers; on opaque port 6379 it denies every connection of its callers (fails closed)",
                "db.yaml: policy shop/db-clients rule acme-only: names methods, paths or headers; on opaque port 6379 it allows no connection",
            ],
            OpaquePortLint.Notes(file, [6379]));
    }

    [Fact]
    public void WithoutOpaquePortsThereIsNothingToSay() =>
        Assert.Empty(OpaquePortLint.Notes(PolicyParser.Parse(Policies, "db.yaml"), []));
}
