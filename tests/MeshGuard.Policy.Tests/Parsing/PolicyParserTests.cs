using MeshGuard.Policy.Model;
using MeshGuard.Policy.Parsing;

namespace MeshGuard.Policy.Tests.Parsing;

public sealed class PolicyParserTests
{
    private const string Valid = """
        apiVersion: meshguard.io/v1alpha1
        kind: AccessPolicy
        metadata: { name: orders-callers, namespace: shop }
        spec:
          selector: { serviceAccount: orders }
          action: allow
          mode: enforce
          rules:
            - from:
                - identity: spiffe://mesh.local/ns/shop/sa/frontend
                - namespace: billing
              to:
                - ports: [8080]
                  methods: [GET, POST]
                  paths: ["/orders", "/orders/*"]
              when:
                - { header: X-Tenant, values: [acme] }
        """;

    [Fact]
    public void ParsesThePolicyOfTheDesign()
    {
        var result = PolicyParser.Parse(Valid, "orders.yaml");
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        var policy = Assert.Single(result.Policies);
        Assert.Equal("shop/orders-callers", policy.Id);
        Assert.Equal("orders", policy.ServiceAccount);
        Assert.Equal(PolicyAction.Allow, policy.Action);
        Assert.Equal(PolicyMode.Enforce, policy.Mode);
        var rule = Assert.Single(policy.Rules);
        Assert.Equal("rules[0]", rule.Name);
        Assert.Equal("spiffe://mesh.local/ns/shop/sa/frontend", rule.From[0].Identity);
        Assert.Equal("billing", rule.From[1].Namespace);
        Assert.Equal([8080], rule.To[0].Ports);
        Assert.Equal(["GET", "POST"], rule.To[0].Methods);
        Assert.Equal([PathPatternKind.Exact, PathPatternKind.Prefix], rule.To[0].Paths.Select(p => p.Kind));
        Assert.Equal("x-tenant", rule.When[0].Header);
        Assert.Equal(new PolicyLocation("orders.yaml", 1, 1), policy.Location);
    }

    [Fact]
    public void ReadsSeveralDocumentsPerFile()
    {
        var text = Valid + "\n---\n" + Valid.Replace("orders-callers", "second", StringComparison.Ordinal).Replace("action: allow", "action: deny", StringComparison.Ordinal) + "\n---\n";
        var result = PolicyParser.Parse(text, "two.yaml");
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(["shop/orders-callers", "shop/second"], result.Policies.Select(p => p.Id));
        Assert.Equal(PolicyAction.Deny, result.Policies[1].Action);
        Assert.Equal(19, result.Policies[1].Location!.Line); // the line after the first document's 17 and its separator
    }

    [Theory]
    [InlineData("selector: { serviceAccount: orders }", "selector: { serviceAcount: orders }", "serviceAcount", "unknown field 'serviceAcount' in selector")]
    [InlineData("- identity: spiffe://mesh.local/ns/shop/sa/frontend", "- identity: spiffe://Mesh.local/ns/shop/sa/frontend", "spiffe://Mesh", "is not a SPIFFE ID: trust domain must be lower-case")]
    [InlineData("methods: [GET, POST]", "methods: [GET, FETCH]", "FETCH", "unknown method 'FETCH'")]
    [InlineData("methods: [GET, POST]", "methods: [get, POST]", "get", "method 'get' must be upper-case: GET")]
    [InlineData("paths: [\"/orders\", \"/orders/*\"]", "paths: [\"/orders\", \"/ord*ers\"]", "\"/ord*ers", "may use '*' only as a whole last segment")]
    [InlineData("paths: [\"/orders\", \"/orders/*\"]", "paths: [\"orders\", \"/orders/*\"]", "\"orders", "must start with '/' or be '*'")]
    [InlineData("ports: [8080]", "ports: [70000]", "70000", "port '70000' is out of range (1-65535)")]
    [InlineData("ports: [8080]", "ports: [0]", "0]", "port '0' is out of range")]
    [InlineData("action: allow", "action: permit", "permit", "action must be one of allow, deny, not 'permit'")]
    [InlineData("mode: enforce", "mode: dryrun", "dryrun", "mode must be one of enforce, audit")]
    [InlineData("apiVersion: meshguard.io/v1alpha1", "apiVersion: v1", "v1", "apiVersion must be meshguard.io/v1alpha1")]
    [InlineData("kind: AccessPolicy", "kind: Policy", "Policy", "kind must be AccessPolicy")]
    [InlineData("name: orders-callers", "name: Orders_Callers", "Orders_Callers", "metadata.name 'Orders_Callers' must be a lower-case DNS name")]
    public void RefusesAMistakeAtTheLineAndColumnOfTheOffendingToken(string original, string replacement, string token, string reason)
    {
        Assert.Contains(original, Valid, StringComparison.Ordinal);
        var text = Valid.Replace(original, replacement, StringComparison.Ordinal);
        var result = PolicyParser.Parse(text, "p.yaml");
        Assert.False(result.IsValid);
        Assert.Empty(result.Policies);
        var error = Assert.Single(result.Errors);
        Assert.Contains(reason, error.Reason, StringComparison.Ordinal);
        Assert.Equal($"p.yaml:{error.Line}:{error.Column}: {error.Reason}", error.ToString());
        var line = text.Split('\n')[error.Line - 1];
        Assert.StartsWith(token, line[(int)(error.Column - 1)..], StringComparison.Ordinal);
    }

    [Fact]
    public void RefusesAnEmptyFrom()
    {
        var text = Valid.Replace("""
                - identity: spiffe://mesh.local/ns/shop/sa/frontend
                - namespace: billing
        """, "", StringComparison.Ordinal).Replace("- from:", "- from: []", StringComparison.Ordinal);
        var result = PolicyParser.Parse(text, "p.yaml");
        Assert.Contains(result.Errors, e => e.Reason.StartsWith("from must list at least one caller", StringComparison.Ordinal));
    }

    [Fact]
    public void RefusesAFromEntryWithBothIdentityAndNamespace()
    {
        var text = Valid.Replace("- namespace: billing", "- { namespace: billing, identity: spiffe://mesh.local/ns/a/sa/b }", StringComparison.Ordinal);
        Assert.Contains(PolicyParser.Parse(text, "p.yaml").Errors, e => e.Reason == "a from entry needs exactly one of identity or namespace");
    }

    [Fact]
    public void ReportsEveryMistakeNotJustTheFirst()
    {
        var text = Valid
            .Replace("methods: [GET, POST]", "methods: [GET, FETCH]", StringComparison.Ordinal)
            .Replace("ports: [8080]", "ports: [0]", StringComparison.Ordinal)
            .Replace("mode: enforce", "mode: loud", StringComparison.Ordinal);
        Assert.Equal(3, PolicyParser.Parse(text, "p.yaml").Errors.Count);
    }

    [Fact]
    public void RefusesDuplicatePolicyNamesInAFile()
    {
        var result = PolicyParser.Parse(Valid + "\n---\n" + Valid, "p.yaml");
        var error = Assert.Single(result.Errors);
        Assert.Equal("duplicate policy name 'shop/orders-callers' in this file", error.Reason);
        Assert.Equal(19, error.Line);
    }

    [Fact]
    public void RefusesBrokenYamlWithItsPosition()
    {
        var result = PolicyParser.Parse("spec:\n  rules: [\n", "p.yaml");
        var error = Assert.Single(result.Errors);
        Assert.StartsWith("not valid YAML", error.Reason, StringComparison.Ordinal);
        Assert.True(error.Line >= 2);
    }

    [Fact]
    public void RefusesMissingRequiredFields()
    {
        var result = PolicyParser.Parse("apiVersion: meshguard.io/v1alpha1\nkind: AccessPolicy\n", "p.yaml");
        Assert.Equal(["missing required field 'metadata'", "missing required field 'spec'"], result.Errors.Select(e => e.Reason));
    }

    [Fact]
    public void AnAllowPolicyWithoutRulesIsAllowedAndAllowsNothing()
    {
        var text = Valid[..Valid.IndexOf("  rules:", StringComparison.Ordinal)];
        var result = PolicyParser.Parse(text, "p.yaml");
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Empty(result.Policies[0].Rules);
    }
}

public sealed class PolicyDirectoryTests
{
    [Fact]
    public void ALaterFileReusingAPolicyNameIsRefusedWhole()
    {
        using var temp = new MeshGuard.Tests.Common.TempDirectory();
        const string policy = "apiVersion: meshguard.io/v1alpha1\nkind: AccessPolicy\nmetadata: { name: p, namespace: shop }\nspec: { action: deny }\n";
        File.WriteAllText(temp.Combine("a.yaml"), policy);
        Directory.CreateDirectory(temp.Combine("team"));
        File.WriteAllText(temp.Combine("team", "b.yaml"), policy.Replace("name: p", "name: q", StringComparison.Ordinal) + "---\n" + policy);
        File.WriteAllText(temp.Combine("notes.txt"), "not a policy");
        var results = PolicyDirectory.Load(temp.Path);
        Assert.Equal(2, results.Count);
        Assert.True(results[0].IsValid);
        var refused = results[1];
        Assert.Empty(refused.Policies);
        Assert.Contains("duplicate policy name 'shop/p': already defined in", Assert.Single(refused.Errors).Reason, StringComparison.Ordinal);
    }
}
