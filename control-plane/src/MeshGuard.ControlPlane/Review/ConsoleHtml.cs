using System.Globalization;
using System.Net;
using System.Text;

namespace MeshGuard.ControlPlane.Review;

/// <summary>The console's page frame and the small pieces every view uses: encoding, links, the time window.</summary>
internal static class ConsoleHtml
{
    /// <summary>The time windows a reviewer picks from, by their query value.</summary>
    public static readonly (string Value, TimeSpan Span)[] Windows =
    [
        ("15m", TimeSpan.FromMinutes(15)), ("1h", TimeSpan.FromHours(1)), ("6h", TimeSpan.FromHours(6)),
        ("24h", TimeSpan.FromHours(24)), ("7d", TimeSpan.FromDays(7)),
    ];

    public const string DefaultWindow = "1h";

    private static readonly (string Path, string Title)[] Navigation =
    [
        ("/console/", "Overview"), ("/console/graph", "Graph"), ("/console/flows", "Flows"),
        ("/console/workloads", "Workloads"), ("/console/policies", "Policies"), ("/console/whatif", "What-if"),
    ];

    public static string E(string? text) => WebUtility.HtmlEncode(text ?? "");

    /// <summary>The window a query names; an unknown value is the default one.</summary>
    public static (string Value, TimeSpan Span) Window(string? value)
    {
        foreach (var window in Windows)
        {
            if (window.Value == value)
            {
                return window;
            }
        }
        return Window(DefaultWindow); // one of Windows
    }

    /// <summary>A path with its query, each value escaped; empty values are left out.</summary>
    public static string Link(string path, params (string Name, string? Value)[] query)
    {
        var link = new StringBuilder(path);
        var first = true;
        foreach (var (name, value) in query)
        {
            if (string.IsNullOrEmpty(value))
            {
                continue;
            }
            link.Append(first ? '?' : '&').Append(name).Append('=').Append(Uri.EscapeDataString(value));
            first = false;
        }
        return link.ToString();
    }

    /// <summary>A select of the time windows, the current one chosen.</summary>
    public static string WindowSelect(string current)
    {
        var html = new StringBuilder("<label>window <select name=\"window\">");
        foreach (var (value, _) in Windows)
        {
            html.Append(CultureInfo.InvariantCulture, $"<option{(value == current ? " selected" : "")}>{value}</option>");
        }
        return html.Append("</select></label>").ToString();
    }

    public static IResult Page(int status, string title, string body, bool navigation = true)
    {
        var html = new StringBuilder(body.Length + 2048);
        html.Append("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>MeshGuard: ").Append(E(title)).Append("</title><style>")
            .Append("body{font-family:sans-serif;margin:1.5em 2em;color:#222}nav a{margin-right:1em}nav{margin-bottom:1em}")
            .Append("table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}")
            .Append("tr.refused,tr.deny{background:#fdd}tr.behind{background:#fff4d6}td{white-space:pre-wrap}pre{background:#f6f8fa;padding:.6em}")
            .Append(".allow{color:#1a7f37}.deny-text{color:#cf222e}form.filters label{margin-right:1em}textarea{width:100%;font-family:monospace}")
            .Append("svg a:hover line,svg a:hover path{stroke-width:5}")
            .Append("</style></head><body>");
        if (navigation)
        {
            html.Append("<nav>");
            foreach (var (path, name) in Navigation)
            {
                html.Append(CultureInfo.InvariantCulture, $"<a href=\"{path}\">{name}</a>");
            }
            html.Append("</nav>");
        }
        html.Append("<h1>MeshGuard: ").Append(E(title)).Append("</h1>").Append(body).Append("</body></html>");
        return Results.Content(html.ToString(), "text/html; charset=utf-8", Encoding.UTF8, status);
    }
}
