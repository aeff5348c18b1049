using System.Text;
using System.Text.Json;
using MeshGuard.ControlPlane.FlowCollection;
using MeshGuard.ControlPlane.Review;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Parsing;

namespace MeshGuard.ControlPlane.Tests.Review;

/// <summary>What the console's views make of recorded flows: the graph's edges, what-if's changes, and encoding of whatever a record holds.</summary>
public sealed class ConsoleViewsTests
{
    private const string Shop = "spiffe://mesh.local/ns/shop/sa/";
    private static readonly LogVerification Verified = new(Shop + "orders", true, 1, "verified");

    private static CollectedFlow Flow(string? source, string destination, string decision, string direction = "inbound", string path = "/orders/1", string method = "GET")
    {
        var fields = new Dictionary<string, object?>
        {
            ["kind"] = "flow",
            ["time"] = "2026-11-24T10:00:00.0000000Z",
            ["direction"] = direction,
            ["source_id"] = source,
            ["dest_id"] = destination,
            ["dest_port"] = 8080,
            ["method"] = method,
            ["path"] = path,
            ["status"] = decision == "allow" ? 200 : 403,
            ["decision"] = decision,
            ["policy"] = "shop/orders-callers",
            ["rule"] = "frontend",
        };
        var line = JsonSerializer.SerializeToUtf8Bytes(fields.Where(static f => f.Value is not null).ToDictionary());
        using var document = JsonDocument.Parse(line);
        return new CollectedFlow(DateTimeOffset.Parse("2026-11-24T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture), document.RootElement.Clone(), line, Verified);
    }

    [Fact]
    public void TheGraphCountsInboundRecordsByCallerCalleeAndDecisionAndDrawsKnownWorkloadsWithoutTraffic()
    {
        var graph = ServiceGraph.From(CallCount.Of(
            [
                Flow(Shop + "frontend", Shop + "orders", "allow"), Flow(Shop + "frontend", Shop + "orders", "allow"),
                Flow(Shop + "frontend", Shop + "orders", "deny"),
                Flow(Shop + "frontend", Shop + "orders", "allow", direction: "outbound"), // the caller's side of a call counted already
                Flow(null, Shop + "orders", "deny"),
                Flow("spiffe://mesh.local/ns/billing/sa/invoices", Shop + "orders", "allow"),
            ]),
            [Shop + "payments"]);

        Assert.Equal(
            [
                new ServiceGraph.Edge(ServiceGraph.Unauthenticated, Shop + "orders", "deny", 1),
                new ServiceGraph.Edge("spiffe://mesh.local/ns/billing/sa/invoices", Shop + "orders", "allow", 1),
                new ServiceGraph.Edge(Shop + "frontend", Shop + "orders", "allow", 2),
                new ServiceGraph.Edge(Shop + "frontend", Shop + "orders", "deny", 1),
            ],
            graph.Edges);
        Assert.Equal(["billing", "outside the mesh", "shop"], graph.Groups.Select(static g => g.Namespace));
        Assert.Equal([Shop + "frontend", Shop + "orders", Shop + "payments"], graph.Groups[2].Identities);

        var svg = GraphView.Render(graph, "1h");
        Assert.Equal(4, CountOf(svg, "<a class=\"edge "));
        Assert.Equal(2, CountOf(svg, "stroke-dasharray")); // the two denied edges
        Assert.Equal(5, CountOf(svg, "<g class=\"node\""));
    }

    [Fact]
    public void WhateverARecordHoldsTheGraphAndFlowsPagesShowAsText()
    {
        var hostile = "<script>alert(1)</script>";
        var flows = new[] { Flow(hostile, Shop + "orders", "deny", path: "/\"><img src=x onerror=alert(1)>") };
        var graph = GraphView.Render(ServiceGraph.From(CallCount.Of(flows), []), "1h");
        var table = FlowsView.Render(new FlowPage(flows.Length, flows, [new DecidedBy("deny", hostile, hostile, 1)]), new FlowsView.Filter(null, null, null, "inbound", "1h"));
        foreach (var html in new[] { graph, table })
        {
            Assert.DoesNotContain("<script>", html, StringComparison.Ordinal);
            Assert.DoesNotContain("<img", html, StringComparison.Ordinal);
        }
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;", table, StringComparison.Ordinal);
    }

    private static PolicySnapshot InForce(string yaml)
    {
        var parsed = PolicyParser.Parse(yaml, "orders.yaml");
        Assert.True(parsed.IsValid, string.Join("\n", parsed.Errors));
        return new PolicySnapshot(1, new PolicySet(parsed.Policies, MeshDefault.Deny), []);
    }

    private const string OrdersCallers = """
        apiVersion: meshguard.io/v1alpha1
        kind: AccessPolicy
        metadata: { name: orders-callers, namespace: shop }
        spec:
          selector: { serviceAccount: orders }
          action: allow
          rules:
            - name: frontend
              from: [{ identity: "spiffe://mesh.local/ns/shop/sa/frontend" }]
              to: [{ methods: [GET] }]
        """;

    [Fact]
    public void WhatIfReplacesThePolicyOfTheSameNameAndListsEachEdgeWhoseDecisionWouldChange()
    {
        var recorded = new[]
        {
            Flow(Shop + "frontend", Shop + "orders", "allow"), Flow(Shop + "frontend", Shop + "orders", "allow", path: "/orders/2"),
            Flow(Shop + "payments", Shop + "orders", "deny"),
        };
        var proposal = OrdersCallers.Replace("spiffe://mesh.local/ns/shop/sa/frontend", "spiffe://mesh.local/ns/shop/sa/payments", StringComparison.Ordinal);
        var html = WhatIfView.Result(proposal, InForce(OrdersCallers), recorded);
        Assert.Contains("<h2 id=\"verdict\">3 of 3 recorded requests would be decided differently</h2>", html, StringComparison.Ordinal);
        Assert.Contains($"<td>{Shop}frontend</td><td>{Shop}orders</td><td>allow</td><td>deny</td><td>2</td>", html, StringComparison.Ordinal);
        Assert.Contains($"<td>{Shop}payments</td><td>{Shop}orders</td><td>deny</td><td>allow</td><td>1</td>", html, StringComparison.Ordinal);
        Assert.Contains("(1 replacing a policy in force)", html, StringComparison.Ordinal);

        Assert.Contains("<h2 id=\"verdict\">0 of 3", WhatIfView.Result(OrdersCallers, InForce(OrdersCallers), recorded), StringComparison.Ordinal);
    }

    [Fact]
    public void AProposalThatDoesNotParseIsRefusedWholeWithLineAndColumn()
    {
        var html = WhatIfView.Result(OrdersCallers.Replace("action: allow", "action: permit", StringComparison.Ordinal), InForce(OrdersCallers), []);
        Assert.Contains("<h2>The proposal does not parse</h2>", html, StringComparison.Ordinal);
        Assert.Matches(@"<li>proposed\.yaml:6:\d+: [^<]*permit", html);
        Assert.DoesNotContain("verdict", html, StringComparison.Ordinal);
    }

    private static int CountOf(string text, string part)
    {
        var count = 0;
        for (var at = text.IndexOf(part, StringComparison.Ordinal); at >= 0; at = text.IndexOf(part, at + part.Length, StringComparison.Ordinal))
        {
            count++;
        }
        return count;
    }
}
