using System.Globalization;
using System.Text;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.ControlPlane.FlowCollection;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.ControlPlane.State;
using MeshGuard.FlowStore;
using MeshGuard.Hosting;
using Microsoft.AspNetCore.Http.Features;
using static MeshGuard.ControlPlane.Review.ConsoleHtml;

namespace MeshGuard.ControlPlane.Review;

/// <summary>
/// The reviewer's console on the admin port (127.0.0.1): <c>/console/login?token=</c> spends a one-time login
/// from <c>meshctl console url</c> for a session cookie (HttpOnly, SameSite=Strict, path /console/), and every
/// other page wants that session. Server-rendered, no script, every value HTML-encoded; the Host must be the
/// loopback address (a page of another site cannot reach it through DNS rebinding); no secret is ever
/// rendered. Read-only: the one form (what-if) decides recorded calls again and changes nothing, and is taken
/// only from the console's own origin.
/// </summary>
internal static class ConsoleEndpoints
{
    public static void Map(IEndpointRouteBuilder app, int adminPort)
    {
        app.MapGet("/console/login", (HttpContext context, ConsoleLogins logins, ConsoleSessions sessions) =>
        {
            if (Refused(context, adminPort) is { } refused)
            {
                return refused;
            }
            if (!logins.TrySpend(context.Request.Query["token"]))
            {
                return Page(StatusCodes.Status403Forbidden, "Login refused",
                    "<p>This login URL is unknown, spent or expired (they work once, within a minute). Run <code>meshctl console url</code> for a new one.</p>", navigation: false);
            }
            context.Response.Cookies.Append(ConsoleSessions.Cookie, sessions.Open(), new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Strict,
                Path = "/console/",
                MaxAge = ConsoleSessions.Lifetime,
                // The admin port is plain HTTP on loopback; a Secure cookie would never be sent back.
                Secure = false,
            });
            // A redirect takes the token out of the address bar and the history.
            return Results.Redirect("/console/", permanent: false, preserveMethod: false);
        }).OnListener(adminPort, loopbackHost: true);

        app.MapGet("/console/", async (HttpContext context, ConsoleSessions sessions, ServiceRegistry registry, PolicyStore policies, WorkloadStatus status,
                ConfigDistributor distributor, ICollectedFlows flows, TimeProvider time) =>
        {
            if (Guard(context, sessions, adminPort) is { } refused)
            {
                return refused;
            }
            var logs = await flows.LogsAsync(context.RequestAborted);
            return Page(StatusCodes.Status200OK, "Mesh overview",
                await SummaryAsync(flows, logs, time, context.RequestAborted) + "<h2>Workloads</h2>"
                + WorkloadsView.Render(status, registry.Current, policies.Current, distributor.Current.Version, logs, time.GetUtcNow())
                + "<h2>Services</h2>" + WorkloadsView.Endpoints(registry.Current)
                + $"<h2>Policy documents (version {policies.Current.Version}, mesh default {E(policies.Current.Set.MeshDefault.ToString())})</h2>" + PoliciesView.Documents(policies.Current));
        }).OnListener(adminPort, loopbackHost: true);

        app.MapGet("/console/graph", async (HttpContext context, ConsoleSessions sessions, ServiceRegistry registry, WorkloadStatus status, ICollectedFlows flows, TimeProvider time) =>
        {
            if (Guard(context, sessions, adminPort) is { } refused)
            {
                return refused;
            }
            var window = Window(context.Request.Query["window"]);
            var known = status.All().Select(static s => s.Key).Concat(registry.Current.Services.SelectMany(static s => s.Endpoints).Select(static e => e.SpiffeId));
            return Page(StatusCodes.Status200OK, "Service graph", GraphView.Render(ServiceGraph.From(await flows.CallsAsync(time.GetUtcNow() - window.Span, context.RequestAborted), known), window.Value));
        }).OnListener(adminPort, loopbackHost: true);

        app.MapGet("/console/flows", async (HttpContext context, ConsoleSessions sessions, ICollectedFlows flows, TimeProvider time) =>
        {
            if (Guard(context, sessions, adminPort) is { } refused)
            {
                return refused;
            }
            var filter = FlowsView.Filter.From(context.Request.Query);
            var selecting = filter.Selecting(time.GetUtcNow() - Window(filter.Window).Span);
            if (context.Request.Query["format"] == "jsonl")
            {
                await FlowsView.ExportAsync(context.Response, await flows.ReadAsync(selecting, context.RequestAborted));
                return Results.Empty;
            }
            return Page(StatusCodes.Status200OK, "Flows", FlowsView.Render(await flows.PageAsync(selecting, FlowsView.Shown, context.RequestAborted), filter));
        }).OnListener(adminPort, loopbackHost: true);

        app.MapGet("/console/workloads", async (HttpContext context, ConsoleSessions sessions, ServiceRegistry registry, PolicyStore policies, WorkloadStatus status,
                ConfigDistributor distributor, ICollectedFlows flows, TimeProvider time) =>
            Guard(context, sessions, adminPort) ?? Page(StatusCodes.Status200OK, "Workloads",
                WorkloadsView.Render(status, registry.Current, policies.Current, distributor.Current.Version, await flows.LogsAsync(context.RequestAborted), time.GetUtcNow())
                + "<h2>Services</h2>" + WorkloadsView.Endpoints(registry.Current)))
            .OnListener(adminPort, loopbackHost: true);

        app.MapGet("/console/policies", (HttpContext context, ConsoleSessions sessions, PolicyStore policies) =>
            Guard(context, sessions, adminPort) ?? Page(StatusCodes.Status200OK, "Policies", PoliciesView.Render(policies.Current)))
            .OnListener(adminPort, loopbackHost: true);

        app.MapGet("/console/whatif", (HttpContext context, ConsoleSessions sessions) =>
            Guard(context, sessions, adminPort) ?? Page(StatusCodes.Status200OK, "What if", WhatIfView.Form("", DefaultWindow)))
            .OnListener(adminPort, loopbackHost: true);

        app.MapPost("/console/whatif", async (HttpContext context, ConsoleSessions sessions, PolicyStore policies, ICollectedFlows flows, TimeProvider time) =>
        {
            if (Guard(context, sessions, adminPort) is { } refused)
            {
                return refused;
            }
            // The cookie is SameSite=Strict already; this check holds even where a browser would not honour it. A
            // browser says where a request comes from in Sec-Fetch-Site (its Origin is "null" here, since the
            // pages send no referrer); other clients must name the console's origin.
            var origin = context.Request.Headers.Origin.ToString();
            var fetchSite = context.Request.Headers["Sec-Fetch-Site"].ToString();
            if (fetchSite.Length > 0 ? fetchSite != "same-origin" : origin != $"http://127.0.0.1:{adminPort}" && origin != $"http://localhost:{adminPort}")
            {
                return Page(StatusCodes.Status403Forbidden, "Refused", "<p>The what-if form is taken only from the console's own pages.</p>");
            }
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            {
                limit.MaxRequestBodySize = WhatIfView.MaxPolicyBytes * 4; // form encoding can triple a text
            }
            if (!context.Request.HasFormContentType)
            {
                return Page(StatusCodes.Status400BadRequest, "What if", "<p>Send the form.</p>");
            }
            IFormCollection form;
            try
            {
                form = await context.Request.ReadFormAsync(context.RequestAborted);
            }
            catch (Exception e) when (e is BadHttpRequestException or InvalidDataException)
            {
                return Page(StatusCodes.Status413PayloadTooLarge, "What if", $"<p>The proposal is larger than {WhatIfView.MaxPolicyBytes / 1024} KiB.</p>");
            }
            var text = form["policy"].ToString();
            if (Encoding.UTF8.GetByteCount(text) > WhatIfView.MaxPolicyBytes)
            {
                return Page(StatusCodes.Status413PayloadTooLarge, "What if", $"<p>The proposal is larger than {WhatIfView.MaxPolicyBytes / 1024} KiB.</p>");
            }
            var window = Window(form["window"]);
            return Page(StatusCodes.Status200OK, "What if",
                WhatIfView.Result(text, policies.Current, await flows.ReadAsync(new StoredFlowFilter(Since: time.GetUtcNow() - window.Span), context.RequestAborted)) + WhatIfView.Form(text, window.Value));
        }).OnListener(adminPort, loopbackHost: true).DisableAntiforgery();
    }

    // The host check, then the session: a page for a visitor without one says how to log in and shows nothing else.
    private static IResult? Guard(HttpContext context, ConsoleSessions sessions, int adminPort) =>
        Refused(context, adminPort) ?? (sessions.IsValid(context.Request.Cookies[ConsoleSessions.Cookie])
            ? null
            : Page(StatusCodes.Status401Unauthorized, "Log in", "<p>Open the URL <code>meshctl console url</code> prints to log in.</p>", navigation: false));

    // Anything but the loopback address this port listens on is another site's page trying its luck. The listener
    // check (Listeners.UseListenerPorts) refused such a request already; this keeps the console's pages safe on their own.
    private static IResult? Refused(HttpContext context, int adminPort)
    {
        SecurityHeaders(context.Response);
        return Listeners.IsLoopbackHost(context.Request.Host, adminPort) && context.Connection.LocalPort == adminPort
            ? null
            : Page(StatusCodes.Status421MisdirectedRequest, "Wrong host", "<p>The console answers on 127.0.0.1 only.</p>", navigation: false);
    }

    private static void SecurityHeaders(HttpResponse response)
    {
        response.Headers.ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers["Referrer-Policy"] = "no-referrer";
        response.Headers.CacheControl = "no-store";
    }

    // The last hour at a glance: calls allowed and denied, and whether every collected log verifies.
    private static async Task<string> SummaryAsync(ICollectedFlows flows, IReadOnlyList<LogVerification> logs, TimeProvider time, CancellationToken cancellation)
    {
        var graph = ServiceGraph.From(await flows.CallsAsync(time.GetUtcNow().AddHours(-1), cancellation), []);
        var allowed = graph.Edges.Where(static e => e.Decision == "allow").Sum(static e => e.Count);
        var denied = graph.Edges.Where(static e => e.Decision != "allow").Sum(static e => e.Count);
        var failing = logs.Count(static l => !l.Verified);
        return string.Create(CultureInfo.InvariantCulture,
            $"<p id=\"summary\">Last hour: <a href=\"/console/flows?decision=allow\">{allowed} calls allowed</a>, <a href=\"/console/flows?decision=deny\">{denied} denied</a>, on {graph.Edges.Count} edges (<a href=\"/console/graph\">graph</a>). ")
            + (failing == 0 ? $"{logs.Count} collected flow logs, all verified.</p>" : $"<b>{failing} of {logs.Count} collected flow logs do not verify</b> (see <a href=\"/console/workloads\">workloads</a>).</p>");
    }
}
