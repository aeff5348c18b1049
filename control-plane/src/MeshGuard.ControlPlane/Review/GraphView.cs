using System.Globalization;
using System.Text;
using static MeshGuard.ControlPlane.Review.ConsoleHtml;

namespace MeshGuard.ControlPlane.Review;

/// <summary>
/// The service graph as server-drawn SVG, no script: one box per namespace with its identities on a circle,
/// an arrow per (caller, callee, decision) — allowed solid green, denied dashed red — labelled with its count.
/// Each arrow is a link to the flows behind it. A table under the drawing lists the same edges.
/// </summary>
internal static class GraphView
{
    private const int Box = 440;
    private const int Radius = 150;
    private const int NodeWidth = 150;
    private const int NodeHeight = 34;
    private const int PerRow = 3;

    public static string Render(ServiceGraph graph, string window)
    {
        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture, $"<form class=\"filters\" method=\"get\" action=\"/console/graph\">{WindowSelect(window)} <button>show</button></form>");
        html.Append(CultureInfo.InvariantCulture, $"<p>Calls recorded in the last {E(window)} by the destination's sidecar, from the flow logs the control plane collected and verified. ")
            .Append("<span class=\"allow\">&#9472;&#9472; allowed</span> &nbsp; <span class=\"deny-text\">- - - denied</span>. Click an arrow for its records.</p>");
        if (graph.Groups.Count == 0)
        {
            return html.Append("<p>No workloads and no recorded calls yet.</p>").ToString();
        }

        var positions = new Dictionary<string, (double X, double Y)>(StringComparer.Ordinal);
        var rows = (graph.Groups.Count + PerRow - 1) / PerRow;
        var width = Math.Min(graph.Groups.Count, PerRow) * Box;
        var height = rows * Box;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg id=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"13\">");
        svg.Append("<defs>")
            .Append("<marker id=\"arrow-allow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#1a7f37\"/></marker>")
            .Append("<marker id=\"arrow-deny\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#cf222e\"/></marker>")
            .Append("</defs>");

        for (var g = 0; g < graph.Groups.Count; g++)
        {
            var group = graph.Groups[g];
            double left = g % PerRow * Box, top = g / PerRow * Box;
            svg.Append(CultureInfo.InvariantCulture, $"<g class=\"namespace\" data-namespace=\"{E(group.Namespace)}\"><rect x=\"{left + 6}\" y=\"{top + 6}\" width=\"{Box - 12}\" height=\"{Box - 12}\" rx=\"10\" fill=\"#f6f8fa\" stroke=\"#d0d7de\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{left + 18}\" y=\"{top + 28}\" font-weight=\"bold\">namespace {E(group.Namespace)}</text></g>");
            for (var i = 0; i < group.Identities.Count; i++)
            {
                var angle = group.Identities.Count == 1 ? 0 : 2 * Math.PI * i / group.Identities.Count - Math.PI / 2;
                var radius = group.Identities.Count == 1 ? 0 : Radius;
                positions[group.Identities[i]] = (left + Box / 2.0 + radius * Math.Cos(angle), top + Box / 2.0 + 12 + radius * Math.Sin(angle));
            }
        }

        foreach (var edge in graph.Edges)
        {
            svg.Append(Arrow(edge, positions[edge.Source], positions[edge.Destination], window));
        }

        foreach (var group in graph.Groups)
        {
            foreach (var identity in group.Identities)
            {
                var (x, y) = positions[identity];
                svg.Append(CultureInfo.InvariantCulture, $"<g class=\"node\" data-identity=\"{E(identity)}\"><title>{E(identity)}</title>")
                    .Append(CultureInfo.InvariantCulture, $"<rect x=\"{x - NodeWidth / 2.0:0.#}\" y=\"{y - NodeHeight / 2.0:0.#}\" width=\"{NodeWidth}\" height=\"{NodeHeight}\" rx=\"6\" fill=\"#fff\" stroke=\"#57606a\"/>")
                    .Append(CultureInfo.InvariantCulture, $"<text x=\"{x:0.#}\" y=\"{y + 4:0.#}\" text-anchor=\"middle\">{E(ServiceGraph.ShortName(identity))}</text></g>");
            }
        }
        svg.Append("</svg>");
        html.Append(svg);

        html.Append("<h2>Edges</h2><table id=\"edges\"><tr><th>caller</th><th>callee</th><th>decision</th><th>requests</th></tr>");
        foreach (var edge in graph.Edges)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<tr class=\"{(edge.Decision == "allow" ? "allow" : "deny")}\"><td>{E(edge.Source)}</td><td>{E(edge.Destination)}</td><td>{E(edge.Decision)}</td><td><a href=\"{E(EdgeLink(edge, window))}\">{edge.Count}</a></td></tr>");
        }
        return html.Append("</table>").ToString();
    }

    public static string EdgeLink(ServiceGraph.Edge edge, string window) =>
        Link("/console/flows", ("src", edge.Source), ("dst", edge.Destination), ("decision", edge.Decision), ("direction", "inbound"), ("window", window));

    // A straight arrow between node edges, moved aside along its normal so that the two directions of a pair
    // and its allowed and denied arrows lie side by side instead of on top of each other.
    private static string Arrow(ServiceGraph.Edge edge, (double X, double Y) from, (double X, double Y) to, string window)
    {
        var allowed = edge.Decision == "allow";
        double dx = to.X - from.X, dy = to.Y - from.Y;
        var length = Math.Sqrt(dx * dx + dy * dy);
        string shape;
        double labelX, labelY;
        if (length < 1)
        {
            // A workload calling itself: a loop above its node.
            var lift = allowed ? 40 : 60;
            shape = string.Create(CultureInfo.InvariantCulture,
                $"<path d=\"M{from.X - 30:0.#},{from.Y - NodeHeight / 2.0:0.#} C{from.X - 40:0.#},{from.Y - lift - 20:0.#} {from.X + 40:0.#},{from.Y - lift - 20:0.#} {from.X + 30:0.#},{from.Y - NodeHeight / 2.0:0.#}\" fill=\"none\"");
            (labelX, labelY) = (from.X, from.Y - lift - 8);
        }
        else
        {
            double ux = dx / length, uy = dy / length, nx = -uy, ny = ux;
            var aside = allowed ? 7.0 : 19.0;
            // Leave the nodes' boxes clear: how far along the line the box edge is, from the centre.
            var clear = Math.Min(NodeWidth / 2.0 / Math.Max(Math.Abs(ux), 1e-6), NodeHeight / 2.0 / Math.Max(Math.Abs(uy), 1e-6)) + 4;
            double x1 = from.X + ux * clear + nx * aside, y1 = from.Y + uy * clear + ny * aside;
            double x2 = to.X - ux * clear + nx * aside, y2 = to.Y - uy * clear + ny * aside;
            shape = string.Create(CultureInfo.InvariantCulture, $"<line x1=\"{x1:0.#}\" y1=\"{y1:0.#}\" x2=\"{x2:0.#}\" y2=\"{y2:0.#}\"");
            // Labels at different points along the two arrows of a pair, so that they never sit on each other.
            var along = allowed ? 0.4 : 0.6;
            (labelX, labelY) = (x1 + (x2 - x1) * along + nx * 12, y1 + (y2 - y1) * along + ny * 12 + 4);
        }
        var colour = allowed ? "#1a7f37" : "#cf222e";
        var verb = allowed ? "allowed" : "denied";
        return string.Create(CultureInfo.InvariantCulture,
            $"<a class=\"edge {(allowed ? "allow" : "deny")}\" href=\"{E(EdgeLink(edge, window))}\" data-source=\"{E(edge.Source)}\" data-destination=\"{E(edge.Destination)}\" data-decision=\"{E(edge.Decision)}\" data-count=\"{edge.Count}\">")
            + $"<title>{E(edge.Source)} to {E(edge.Destination)}: {edge.Count} {verb}</title>"
            + shape + string.Create(CultureInfo.InvariantCulture, $" stroke=\"{colour}\" stroke-width=\"3\"{(allowed ? "" : " stroke-dasharray=\"7 5\"")} marker-end=\"url(#arrow-{(allowed ? "allow" : "deny")})\"/>")
            + string.Create(CultureInfo.InvariantCulture, $"<text x=\"{labelX:0.#}\" y=\"{labelY:0.#}\" text-anchor=\"middle\" fill=\"{colour}\" font-weight=\"bold\">{edge.Count}</text></a>");
    }
}
