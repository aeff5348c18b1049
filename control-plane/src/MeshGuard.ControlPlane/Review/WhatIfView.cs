using System.Globalization;
using System.Text;
using MeshGuard.ControlPlane.FlowCollection;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Policy.Advice;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Parsing;
using static MeshGuard.ControlPlane.Review.ConsoleHtml;

namespace MeshGuard.ControlPlane.Review;

/// <summary>
/// Try a policy before applying it: the pasted documents replace the policies of the same name in force (or
/// join them), and every recorded inbound request in the window is decided again; the page lists each edge
/// whose decision would change, with examples and what would decide them. Nothing is applied. A paste that
/// does not parse is refused whole with line, column and reason, as <c>meshctl policy lint</c> would.
/// </summary>
internal static class WhatIfView
{
    public const int MaxPolicyBytes = 64 * 1024;
    public const string ProposedFile = "proposed.yaml";

    public static string Form(string text, string window) =>
        "<p>Paste AccessPolicy YAML. It replaces the policies of the same name in force, or is added to them; the recorded calls of the window are decided again. Nothing is applied.</p>"
        + "<form method=\"post\" action=\"/console/whatif\">"
        + $"<textarea name=\"policy\" rows=\"18\" spellcheck=\"false\">{E(text)}</textarea><p>{WindowSelect(window)} <button id=\"try\">try against recorded flows</button></p></form>";

    public static string Result(string text, PolicySnapshot inForce, IEnumerable<CollectedFlow> flows)
    {
        var parsed = PolicyParser.Parse(text, ProposedFile);
        if (!parsed.IsValid)
        {
            var errors = new StringBuilder("<h2>The proposal does not parse</h2><ul id=\"errors\">");
            foreach (var error in parsed.Errors)
            {
                errors.Append(CultureInfo.InvariantCulture, $"<li>{E(error.ToString())}</li>");
            }
            return errors.Append("</ul>").ToString();
        }
        var replaced = parsed.Policies.Select(static p => p.Id).ToHashSet(StringComparer.Ordinal);
        var proposed = new PolicySet([.. inForce.Set.Policies.Where(p => !replaced.Contains(p.Id)), .. parsed.Policies], inForce.Set.MeshDefault);
        var observed = flows.Select(static f => ObservedRequest.FromFlowRecord(f.Record)).OfType<ObservedRequest>().ToList();
        var changes = PolicyReplay.Changes(proposed, observed);

        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture,
            $"<h2 id=\"verdict\">{changes.Count} of {observed.Count} recorded requests would be decided differently</h2>")
            .Append(CultureInfo.InvariantCulture, $"<p>Proposed: {E(string.Join(", ", parsed.Policies.Select(static p => p.Id)))} ({replaced.Count(id => inForce.Set.Policies.Any(p => p.Id == id))} replacing a policy in force).</p>");
        if (changes.Count == 0)
        {
            return html.ToString();
        }
        html.Append("<table id=\"changes\"><tr><th>caller</th><th>callee</th><th>now</th><th>would be</th><th>requests</th><th>for example</th></tr>");
        foreach (var edge in changes.GroupBy(static c => (c.Request.SourceId, c.Request.DestId, From: c.Request.Decision, To: c.Proposed.Verdict))
            .OrderBy(static g => g.Key.SourceId, StringComparer.Ordinal).ThenBy(static g => g.Key.DestId, StringComparer.Ordinal))
        {
            var examples = string.Join("\n", edge.Take(3).Select(static c => $"{c.Request.Method} {c.Request.Path}: {c.Proposed.Describe()}"));
            html.Append(CultureInfo.InvariantCulture,
                $"<tr class=\"{(edge.Key.To == Verdict.Allow ? "allow" : "deny")}\"><td>{E(edge.Key.SourceId)}</td><td>{E(edge.Key.DestId)}</td><td>{Decision.Text(edge.Key.From)}</td><td>{Decision.Text(edge.Key.To)}</td><td>{edge.Count()}</td><td>{E(examples)}</td></tr>");
        }
        return html.Append("</table>").ToString();
    }
}
