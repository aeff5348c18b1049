using System.Globalization;
using System.Net;
using System.Text;
using MeshGuard.Contracts.DataDir;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.Store;

namespace MeshGuard.ControlPlane.Review;

/// <summary>
/// The reviewer's console on the admin port (127.0.0.1): <c>/console/login?token=</c> spends a one-time login
/// from <c>meshctl console url</c> for a session cookie (HttpOnly, SameSite=Strict, path /console/), and every
/// other page wants that session. Read-only, server-rendered, every value HTML-encoded; the Host must be the
/// loopback address (a page of another site cannot reach it through DNS rebinding); no secret is ever rendered.
/// </summary>
internal static class ConsoleEndpoints
{
    public static void Map(IEndpointRouteBuilder app, int adminPort)
    {
        var host = $"*:{adminPort}";
        app.MapGet("/console/login", (HttpContext context, ConsoleLogins logins, ConsoleSessions sessions) =>
        {
            if (Refused(context, adminPort) is { } refused)
            {
                return refused;
            }
            if (!logins.TrySpend(context.Request.Query["token"]))
            {
                return Page(StatusCodes.Status403Forbidden, "Login refused",
                    "<p>This login URL is unknown, spent or expired (they work once, within a minute). Run <code>meshctl console url</code> for a new one.</p>");
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
        }).RequireHost(host);

        app.MapGet("/console/", (HttpContext context, ConsoleSessions sessions, ServiceRegistry registry, PolicyStore policies, WorkloadStatus status,
                Distribution.ConfigDistributor distributor, TimeProvider time) =>
            Refused(context, adminPort) ?? (sessions.IsValid(context.Request.Cookies[ConsoleSessions.Cookie])
                ? Page(StatusCodes.Status200OK, "Mesh overview", Sidecars(status, distributor.Current.Version, time.GetUtcNow()) + Overview(registry, policies))
                : Page(StatusCodes.Status401Unauthorized, "Log in", "<p>Open the URL <code>meshctl console url</code> prints to log in.</p>"))).RequireHost(host);
    }

    // Anything but the loopback address this port listens on is another site's page trying its luck.
    private static IResult? Refused(HttpContext context, int adminPort)
    {
        SecurityHeaders(context.Response);
        var hostHeader = context.Request.Host;
        return hostHeader.Host is "127.0.0.1" or "localhost" && (hostHeader.Port ?? 80) == adminPort
            ? null
            : Page(StatusCodes.Status421MisdirectedRequest, "Wrong host", "<p>The console answers on 127.0.0.1 only.</p>");
    }

    private static void SecurityHeaders(HttpResponse response)
    {
        response.Headers.ContentSecurityPolicy = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers["Referrer-Policy"] = "no-referrer";
        response.Headers.CacheControl = "no-store";
    }

    // Each sidecar this replica served: its SVID's expiry, and whether its stream has the current version.
    private static string Sidecars(WorkloadStatus status, long currentVersion, DateTimeOffset now)
    {
        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture, $"<h2>Sidecars (config version {currentVersion})</h2>");
        html.Append("<table><tr><th>identity</th><th>SVID serial</th><th>SVID expires</th><th>stream</th><th>version sent</th></tr>");
        foreach (var (id, sidecar) in status.All())
        {
            var left = sidecar.SvidNotAfter - now;
            var expiry = sidecar.SvidSerial.Length == 0 ? "-"
                : left <= TimeSpan.Zero ? $"{sidecar.SvidNotAfter:yyyy-MM-ddTHH:mm:ssZ} (expired)"
                : $"{sidecar.SvidNotAfter:yyyy-MM-ddTHH:mm:ssZ} (in {(int)left.TotalMinutes} min)";
            var stream = sidecar.OpenStreams == 0 ? "not connected"
                : sidecar.SentVersion == currentVersion ? "connected, current" : "connected, behind";
            html.Append(CultureInfo.InvariantCulture,
                $"<tr class=\"{(stream == "connected, current" ? "ok" : "refused")}\"><td>{E(id)}</td><td>{E(sidecar.SvidSerial)}</td><td>{E(expiry)}</td><td>{E(stream)}</td><td>{sidecar.SentVersion}</td></tr>");
        }
        html.Append("</table>");
        return html.ToString();
    }

    private static string Overview(ServiceRegistry registry, PolicyStore policies)
    {
        var html = new StringBuilder();
        var table = registry.Current;
        html.Append("<h2>Workloads</h2><table><tr><th>service</th><th>namespace</th><th>address</th><th>identity</th></tr>");
        foreach (var service in table.Services.OrderBy(static s => s.Namespace, StringComparer.Ordinal).ThenBy(static s => s.Name, StringComparer.Ordinal))
        {
            foreach (var endpoint in service.Endpoints)
            {
                html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(service.Name)}</td><td>{E(service.Namespace)}</td><td>{E(endpoint.Address)}</td><td>{E(endpoint.SpiffeId)}</td></tr>");
            }
        }
        html.Append("</table>");
        var snapshot = policies.Current;
        html.Append(CultureInfo.InvariantCulture, $"<h2>Policies (version {snapshot.Version}, mesh default {E(snapshot.Set.MeshDefault.ToString())})</h2>");
        html.Append("<table><tr><th>document</th><th>state</th><th>policies in force</th><th>errors</th></tr>");
        foreach (var file in snapshot.Files)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<tr class=\"{(file.Accepted ? "ok" : "refused")}\"><td>{E(file.File)}</td><td>{(file.Accepted ? "accepted" : "refused")}</td><td>{E(string.Join(", ", file.PoliciesInForce))}</td><td>{E(string.Join("\n", file.Errors))}</td></tr>");
        }
        html.Append("</table>");
        return html.ToString();
    }

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static IResult Page(int status, string title, string body) => Results.Content(
        $"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>MeshGuard: {E(title)}</title>"
        + "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
        + "tr.refused{background:#fdd}td{white-space:pre-wrap}</style></head>"
        + $"<body><h1>MeshGuard: {E(title)}</h1>{body}</body></html>",
        "text/html; charset=utf-8", Encoding.UTF8, status);
}
