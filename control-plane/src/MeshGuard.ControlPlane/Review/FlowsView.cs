using System.Globalization;
using System.Text;
using MeshGuard.ControlPlane.FlowCollection;
using MeshGuard.FlowLog;
using MeshGuard.FlowStore;
using static MeshGuard.ControlPlane.Review.ConsoleHtml;

namespace MeshGuard.ControlPlane.Review;

/// <summary>
/// The flow records of the collected logs, filtered by caller, callee, decision, direction and time window;
/// shown as a table (with the deciding policy and rule, and the verification of the log each came from) or
/// exported as JSON Lines, each line exactly as the sidecar wrote and signed it.
/// </summary>
internal static class FlowsView
{
    public const int Shown = 500;
    private static readonly byte[] Newline = [(byte)'\n'];

    public sealed record Filter(string? Source, string? Destination, string? Decision, string Direction, string Window)
    {
        public static Filter From(IQueryCollection query)
        {
            static string? Value(IQueryCollection q, string name) => q[name].ToString() is { Length: > 0 and <= 2048 } v ? v : null;
            var direction = Value(query, "direction") is "outbound" or "any" ? Value(query, "direction")! : "inbound";
            var decision = Value(query, "decision") is "allow" or "deny" ? Value(query, "decision") : null;
            return new Filter(Value(query, "src"), Value(query, "dst"), decision, direction, ConsoleHtml.Window(Value(query, "window")).Value);
        }

        /// <summary>What the flow source selects for this filter: the window's records, newest first.</summary>
        public StoredFlowFilter Selecting(DateTimeOffset since) => new(
            Since: since,
            Direction: Direction == "any" ? null : Direction,
            Source: Source == ServiceGraph.Unauthenticated ? null : Source,
            NoSource: Source == ServiceGraph.Unauthenticated,
            Destination: Destination,
            Decision: Decision,
            NewestFirst: true);

        public string Query(string path, string? format = null) => Link(path, ("src", Source), ("dst", Destination), ("decision", Decision),
            ("direction", Direction), ("window", Window), ("format", format));
    }

    /// <summary>The matching records as JSON Lines: the lines as held, newest first.</summary>
    public static async Task ExportAsync(HttpResponse response, IEnumerable<CollectedFlow> flows)
    {
        response.ContentType = "application/x-ndjson";
        response.Headers.ContentDisposition = "attachment; filename=\"meshguard-flows.jsonl\"";
        foreach (var flow in flows)
        {
            await response.Body.WriteAsync(flow.Line);
            await response.Body.WriteAsync(Newline);
        }
    }

    public static string Render(FlowPage page, Filter filter)
    {
        var html = new StringBuilder();
        html.Append("<form class=\"filters\" method=\"get\" action=\"/console/flows\">")
            .Append(CultureInfo.InvariantCulture, $"<label>caller <input name=\"src\" size=\"40\" value=\"{E(filter.Source)}\"></label>")
            .Append(CultureInfo.InvariantCulture, $"<label>callee <input name=\"dst\" size=\"40\" value=\"{E(filter.Destination)}\"></label>")
            .Append("<label>decision <select name=\"decision\">").Append(Option("", "any", filter.Decision ?? "")).Append(Option("allow", "allow", filter.Decision ?? ""))
            .Append(Option("deny", "deny", filter.Decision ?? "")).Append("</select></label>")
            .Append("<label>direction <select name=\"direction\">").Append(Option("inbound", "inbound (decided here)", filter.Direction))
            .Append(Option("outbound", "outbound", filter.Direction)).Append(Option("any", "both", filter.Direction)).Append("</select></label>")
            .Append(WindowSelect(filter.Window)).Append(" <button>filter</button></form>");
        html.Append(CultureInfo.InvariantCulture,
            $"<p id=\"summary\">{(page.MoreThanCounted ? $"More than {FlowPage.CountedUpTo:N0}" : page.Total.ToString(CultureInfo.InvariantCulture))} record(s) in the last {E(filter.Window)}{(page.Total > Shown ? $", the newest {Shown} shown" : "")}. <a id=\"export\" href=\"{E(filter.Query("/console/flows", "jsonl"))}\">Export as JSON Lines</a></p>");

        if (page.DecidedBy.Count > 0)
        {
            // An edge: which policy and rule decided its calls.
            html.Append(CultureInfo.InvariantCulture, $"<h2>Decided by</h2><table id=\"deciding\"><tr><th>decision</th><th>policy</th><th>rule</th><th>requests</th></tr>");
            foreach (var decided in page.DecidedBy)
            {
                html.Append(CultureInfo.InvariantCulture,
                    $"<tr class=\"{(decided.Decision == "allow" ? "allow" : "deny")}\"><td>{E(decided.Decision)}</td><td>{PolicyLink(decided.Policy)}</td><td>{E(decided.Rule)}</td><td>{decided.Requests}</td></tr>");
            }
            html.Append("</table>");
        }

        html.Append("<table id=\"flows\"><tr><th>time (UTC)</th><th>direction</th><th>caller</th><th>callee</th><th>request</th><th>status</th><th>decision</th><th>policy</th><th>rule</th><th>audit</th><th>log</th></tr>");
        foreach (var flow in page.Newest.Take(Shown))
        {
            var r = flow.Record;
            var decision = r.Text("decision") ?? "";
            var audit = r.Text("audit_decision") is { } a ? $"{a} ({r.Text("audit_policy")} {r.Text("audit_rule")})" : "";
            html.Append(CultureInfo.InvariantCulture, $"<tr class=\"{(decision == "deny" ? "deny" : "")}\" data-request-id=\"{E(r.Text("request_id"))}\">")
                .Append(CultureInfo.InvariantCulture, $"<td>{flow.Time:yyyy-MM-dd HH:mm:ss.fff}</td><td>{E(r.Text("direction"))}</td><td>{E(r.Text("source_id") ?? r.Text("source_addr"))}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{E(r.Text("dest_id") ?? r.Text("dest_addr"))}</td><td>{E(r.Text("method"))} {E(r.Text("path"))}</td><td>{r.Number("status")}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{E(decision)}</td><td>{PolicyLink(r.Text("policy"))}</td><td>{E(r.Text("rule"))}</td><td>{E(audit)}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td title=\"{E(flow.Log.Summary)}\">{(flow.Log.Verified ? "verified" : "NOT VERIFIED")}: {E(flow.Log.Workload)}</td></tr>");
        }
        return html.Append("</table>").ToString();
    }

    private static string PolicyLink(string? policy) =>
        string.IsNullOrEmpty(policy) ? "" : $"<a href=\"/console/policies#{E(PoliciesView.Anchor(policy))}\">{E(policy)}</a>";

    private static string Option(string value, string text, string current) =>
        $"<option value=\"{E(value)}\"{(value == current ? " selected" : "")}>{E(text)}</option>";
}
