using System.Text.Json;
using MeshGuard.Ctl.Demo;
using MeshGuard.FlowLog;
using MeshGuard.Tests.Common;
using Microsoft.Playwright;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// The reviewer's console in a real browser: Debian's chromium, driven by Playwright, against the running demo
/// mesh (<c>meshctl demo --serve</c>). The graph shows the demo's calls with their decisions; the denied edge
/// leads to its record and the rule that denied it; what-if finds the call a proposed policy would let through.
/// Screenshots go to out/test-results/console/.
/// </summary>
[Trait("Subject", "ReviewerConsole")]
public sealed class ConsoleBrowserTests : IAsyncLifetime
{
    private const string Chromium = "/usr/bin/chromium";
    private const string Shop = "spiffe://mesh.local/ns/shop/sa/";
    private readonly TempDirectory _temp = new();
    private MeshProcess _demo = null!;
    private string _cpData = null!;

    private static readonly string Screenshots = Path.Combine(RepositoryRoot.Path, "out", "test-results", "console");

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        _demo = MeshProcess.Start("demo", "meshctl",
            ["demo", "--serve", "--dir", _temp.Path, "--policies", Path.Combine(RepositoryRoot.Path, "samples", "policies")],
            Path.Combine(_temp.Path, "..", Path.GetFileName(_temp.Path) + "-demo.log"));
        Assert.True(await Eventually.TrueAsync(() => _demo.ReadLog().Contains("demo: mesh running", StringComparison.Ordinal) || _demo.HasExited, TimeSpan.FromSeconds(90)),
            "the demo did not start: " + _demo.ReadLog());
        Assert.False(_demo.HasExited, _demo.ReadLog());
        Assert.Contains("demo: every call behaved as expected", _demo.ReadLog(), StringComparison.Ordinal);
        _cpData = Path.Combine(_temp.Path, "cp");
        // The six inbound records reach the control plane with each sidecar's next checkpoint (every 5 s).
        Assert.True(await Eventually.TrueAsync(() => CollectedInbound() == 6, TimeSpan.FromSeconds(30)), $"collected {CollectedInbound()} inbound records");
    }

    public async Task DisposeAsync()
    {
        await _demo.StopAsync(TimeSpan.FromSeconds(20));
        await _demo.DisposeAsync();
        _temp.Dispose();
    }

    private int CollectedInbound() =>
        FlowLogFormat.FilesBelow(Path.Combine(_cpData, "flows")).Sum(f => FlowLogReader.Records(File.ReadAllBytes(f)).Count(r => r.Text("kind") == "flow" && r.Text("direction") == "inbound"));

    private static async Task<IBrowser> LaunchAsync(IPlaywright playwright) =>
        await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            // The system's chromium: nothing is downloaded. Playwright gives it a fresh profile directory.
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            Timeout = 60_000,
        });

    private async Task<string> LoginUrlAsync()
    {
        var (exit, output) = await Cli.RunAsync("meshctl", "console", "url", "--data", _cpData);
        Assert.True(exit == 0, output);
        return output.Trim();
    }

    [Fact]
    public async Task TheGraphShowsTheDemosCallsByDecisionAndADeniedEdgeLeadsToItsRecordAndRule()
    {
        Directory.CreateDirectory(Screenshots);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });

        await page.GotoAsync(await LoginUrlAsync());
        Assert.EndsWith("/console/", page.Url, StringComparison.Ordinal); // the token left the address bar
        Assert.Contains("3 collected flow logs, all verified", await page.Locator("#summary").InnerTextAsync(), StringComparison.Ordinal);
        await page.ClickAsync("nav >> text=Graph");

        var edges = page.Locator("svg#graph a.edge");
        var drawn = new List<string>();
        for (var i = 0; i < await edges.CountAsync(); i++)
        {
            var edge = edges.Nth(i);
            var decision = await edge.GetAttributeAsync("data-decision");
            var arrow = edge.Locator("line");
            // Allowed solid green, denied dashed red.
            Assert.Equal(decision == "allow" ? "#1a7f37" : "#cf222e", await arrow.GetAttributeAsync("stroke"));
            Assert.Equal(decision == "allow", await arrow.GetAttributeAsync("stroke-dasharray") is null);
            Assert.True(await edge.IsVisibleAsync());
            drawn.Add($"{Name(await edge.GetAttributeAsync("data-source"))} -> {Name(await edge.GetAttributeAsync("data-destination"))} {decision} {await edge.GetAttributeAsync("data-count")}");
        }
        Assert.Equal(
            ["frontend -> orders allow 2", "frontend -> orders deny 1", "orders -> payments allow 1", "orders -> payments deny 1", "payments -> orders deny 1"],
            drawn.Order(StringComparer.Ordinal));
        Assert.Equal(3, await page.Locator("svg#graph g.node").CountAsync());
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Screenshots, "graph.png"), FullPage = true });

        // The one denied call of payments to orders: its record, the rule that denied it, and its log verified.
        await page.Locator($"svg#graph a.edge.deny[data-source='{Shop}payments'][data-destination='{Shop}orders']").Locator("text").ClickAsync(); // its count; a level line has no height to click
        await page.WaitForURLAsync("**/console/flows?**");
        var rows = page.Locator("table#flows tr[data-request-id]");
        Assert.Equal(1, await rows.CountAsync());
        var cells = await rows.First.Locator("td").AllInnerTextsAsync();
        Assert.Equal(["inbound", $"{Shop}payments", $"{Shop}orders", "GET /orders/42", "403", "deny", "shop/no-payments", "payments-never"], cells.Skip(1).Take(8));
        Assert.StartsWith("verified", cells[10], StringComparison.Ordinal);
        Assert.Equal(["deny", "shop/no-payments", "payments-never", "1"], await page.Locator("table#deciding tr.deny td").AllInnerTextsAsync());
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Screenshots, "denied-edge.png"), FullPage = true });

        // The export is the record exactly as the sidecar wrote it into the chain the control plane holds.
        var export = await page.Context.APIRequest.GetAsync(await page.Locator("a#export").GetAttributeAsync("href") is { } href ? new Uri(new Uri(page.Url), href).ToString() : "");
        Assert.Equal(200, export.Status);
        var line = (await export.TextAsync()).TrimEnd('\n');
        Assert.DoesNotContain('\n', line);
        var collected = FlowLogFormat.FilesBelow(Path.Combine(_cpData, "flows")).SelectMany(File.ReadAllLines);
        Assert.Contains(line, collected);
        using (var record = JsonDocument.Parse(line))
        {
            Assert.Equal("shop/no-payments", record.RootElement.GetProperty("policy").GetString());
        }

        // The deciding policy, as the control plane understood it.
        await page.ClickAsync("table#deciding a");
        Assert.Contains("payments-never", await page.Locator($"section[id='policy-shop/no-payments'] pre").InnerTextAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WhatIfShowsTheRecordedCallAProposedPolicyWouldLetThrough()
    {
        Directory.CreateDirectory(Screenshots);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchAsync(playwright);
        var page = await browser.NewPageAsync();
        await page.GotoAsync(await LoginUrlAsync());
        await page.ClickAsync("nav >> text=What-if");

        // Let payments read orders: its deny policy is replaced by one naming nobody, and an allow rule names it.
        await page.FillAsync("textarea[name=policy]", """
            apiVersion: meshguard.io/v1alpha1
            kind: AccessPolicy
            metadata: { name: orders-callers, namespace: shop }
            spec:
              selector: { serviceAccount: orders }
              action: allow
              rules:
                - name: frontend-orders
                  from: [{ identity: "spiffe://mesh.local/ns/shop/sa/frontend" }]
                  to: [{ methods: [GET, POST], paths: ["/orders", "/orders/*"] }]
                - name: payments-reads
                  from: [{ identity: "spiffe://mesh.local/ns/shop/sa/payments" }]
                  to: [{ methods: [GET] }]
            ---
            apiVersion: meshguard.io/v1alpha1
            kind: AccessPolicy
            metadata: { name: no-payments, namespace: shop }
            spec:
              selector: { serviceAccount: orders }
              action: deny
              rules:
                - name: nobody
                  from: [{ identity: "spiffe://mesh.local/ns/shop/sa/nobody" }]
            """);
        await page.ClickAsync("button#try");
        Assert.Equal("1 of 6 recorded requests would be decided differently", await page.Locator("#verdict").InnerTextAsync());
        Assert.Equal([$"{Shop}payments", $"{Shop}orders", "deny", "allow", "1", "GET /orders/42: policy shop/orders-callers rule payments-reads"],
            await page.Locator("table#changes tr.allow td").AllInnerTextsAsync());
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Screenshots, "whatif.png"), FullPage = true });

        // Nothing was applied: the call is still denied by the policy in force.
        await page.ClickAsync("nav >> text=Policies");
        Assert.Contains("payments-never", await page.Locator("section[id='policy-shop/no-payments'] pre").InnerTextAsync(), StringComparison.Ordinal);

        await page.ClickAsync("nav >> text=What-if");
        await page.FillAsync("textarea[name=policy]", "kind: AccessPolicy\nmetadata: { name: broken }\n");
        await page.ClickAsync("button#try");
        Assert.StartsWith("proposed.yaml:", await page.Locator("#errors li").First.InnerTextAsync(), StringComparison.Ordinal);
    }

    private static string Name(string? identity) => identity is not null && identity.StartsWith(Shop, StringComparison.Ordinal) ? identity[Shop.Length..] : identity ?? "";
}
