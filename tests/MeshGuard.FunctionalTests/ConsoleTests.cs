using System.Net;

namespace MeshGuard.FunctionalTests;

/// <summary>The reviewer's console: a one-time login URL from meshctl, a session cookie, and pages that want it.</summary>
[Collection(nameof(MeshCollection))]
[Trait("Subject", "ControlPlane")]
public sealed class ConsoleTests(MeshFixture mesh)
{
    private async Task<Uri> LoginUrlAsync()
    {
        var (code, output) = await Cli.RunAsync("meshctl", "console", "url", "--data", mesh.Mesh.Data.Root);
        Assert.True(code == 0, output);
        return new Uri(output.Trim());
    }

    private static HttpClient Browser(CookieContainer cookies) =>
        new(new SocketsHttpHandler { UseProxy = false, CookieContainer = cookies, AllowAutoRedirect = false });

    [Fact]
    public async Task ALoginUrlWorksOnceAndItsSessionCookieOpensTheOverview()
    {
        var url = await LoginUrlAsync();
        Assert.Equal($"127.0.0.1:{mesh.Mesh.ControlPlane!.AdminPort}", url.Authority);
        var cookies = new CookieContainer();
        using var browser = Browser(cookies);

        using var login = await browser.GetAsync(url);
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        Assert.Equal("/console/", login.Headers.Location!.OriginalString);
        var setCookie = Assert.Single(login.Headers.GetValues("Set-Cookie"));
        Assert.Contains("httponly", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("path=/console/", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("no-referrer", Assert.Single(login.Headers.GetValues("Referrer-Policy")));

        using var overview = await browser.GetAsync(new Uri(url, "/console/"));
        var page = await overview.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, overview.StatusCode);
        Assert.Contains("<td>orders</td><td>shop</td>", page, StringComparison.Ordinal);
        Assert.Contains("spiffe://mesh.local/ns/shop/sa/frontend", page, StringComparison.Ordinal);
        // Each sidecar with the serial and expiry of the SVID it holds, and its stream current.
        foreach (var sidecar in new[] { mesh.Frontend, mesh.Orders })
        {
            var certs = SidecarAdmin.Certs(sidecar);
            Assert.Contains($"<td>{sidecar.Identity}</td><td>{certs.GetProperty("serial").GetString()}</td><td>{certs.GetProperty("not_after").GetDateTimeOffset():yyyy-MM-ddTHH:mm:ssZ} (in ",
                page, StringComparison.Ordinal);
        }
        Assert.Matches(@"<td>spiffe://mesh.local/ns/shop/sa/orders</td><td>[0-9A-F]+</td><td>[^<]+</td><td>connected, current</td>", page);
        Assert.Contains("frame-ancestors 'none'", Assert.Single(overview.Headers.GetValues("Content-Security-Policy")), StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", page, StringComparison.Ordinal);
        Assert.DoesNotContain(url.Query["?token=".Length..], page, StringComparison.Ordinal);

        // The same URL a second time: refused, and no session.
        using var again = Browser(new CookieContainer());
        using var replay = await again.GetAsync(url);
        Assert.Equal(HttpStatusCode.Forbidden, replay.StatusCode);
        Assert.False(replay.Headers.Contains("Set-Cookie"));
    }

    [Fact]
    public async Task WithoutASessionOrWithAForgedOneThePagesAreRefused()
    {
        var overview = new Uri($"http://127.0.0.1:{mesh.Mesh.ControlPlane!.AdminPort}/console/");
        using var anonymous = Browser(new CookieContainer());
        foreach (var page in new[] { "/console/", "/console/graph", "/console/flows", "/console/flows?format=jsonl", "/console/workloads", "/console/policies", "/console/whatif" })
        {
            using var response = await anonymous.GetAsync(new Uri(overview, page));
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.DoesNotContain("spiffe://", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        var forged = new CookieContainer();
        forged.Add(overview, new Cookie("meshguard_console", "forged-session-value", "/console/"));
        using var forger = Browser(forged);
        using (var response = await forger.GetAsync(overview))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }
        using var madeUp = await anonymous.GetAsync(new Uri(overview, "/console/login?token=mgcl_made-up"));
        Assert.Equal(HttpStatusCode.Forbidden, madeUp.StatusCode);
    }

    [Fact]
    public async Task APageReachedUnderAnotherHostNameIsRefused()
    {
        // What a page of another site would send after pointing its own name at 127.0.0.1 (DNS rebinding).
        var url = await LoginUrlAsync();
        using var browser = Browser(new CookieContainer());
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Host = $"attacker.example:{url.Port}";
        using var response = await browser.SendAsync(request);
        Assert.Equal(HttpStatusCode.MisdirectedRequest, response.StatusCode);
        Assert.False(response.Headers.Contains("Set-Cookie"));
    }

    [Fact]
    public async Task TheWhatIfFormIsTakenOnlyFromTheConsolesOwnPages()
    {
        var url = await LoginUrlAsync();
        using var browser = Browser(new CookieContainer());
        using (var login = await browser.GetAsync(url))
        {
            Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        }
        var whatIf = new Uri(url, "/console/whatif");
        async Task<HttpStatusCode> PostAsync(string? fetchSite, string? origin)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, whatIf)
            {
                Content = new FormUrlEncodedContent([new("policy", "kind: AccessPolicy\n"), new("window", "1h")]),
            };
            if (fetchSite is not null)
            {
                request.Headers.Add("Sec-Fetch-Site", fetchSite);
            }
            if (origin is not null)
            {
                request.Headers.Add("Origin", origin);
            }
            using var response = await browser.SendAsync(request);
            return response.StatusCode;
        }
        Assert.Equal(HttpStatusCode.OK, await PostAsync("same-origin", "null"));
        Assert.Equal(HttpStatusCode.OK, await PostAsync(null, $"http://127.0.0.1:{url.Port}"));
        Assert.Equal(HttpStatusCode.Forbidden, await PostAsync("cross-site", "null"));
        Assert.Equal(HttpStatusCode.Forbidden, await PostAsync(null, "http://attacker.example"));
        Assert.Equal(HttpStatusCode.Forbidden, await PostAsync(null, null));
    }
}
