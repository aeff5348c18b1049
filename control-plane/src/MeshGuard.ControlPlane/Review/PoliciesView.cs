using System.Globalization;
using System.Text;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Policy.Advice;
using static MeshGuard.ControlPlane.Review.ConsoleHtml;

namespace MeshGuard.ControlPlane.Review;

/// <summary>
/// The policy documents and what the parser made of them: each document accepted or refused with its lint
/// errors (file:line:column: reason), and each policy in force as it was understood, written back as YAML.
/// </summary>
internal static class PoliciesView
{
    public static string Anchor(string policyId) => "policy-" + policyId;

    public static string Render(PolicySnapshot snapshot)
    {
        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture, $"<p>Version {snapshot.Version}; mesh default <b>{E(snapshot.Set.MeshDefault.ToString())}</b> (for workloads no policy selects).</p>");
        html.Append("<h2>Documents</h2>").Append(Documents(snapshot));
        html.Append("<h2>Policies in force</h2>");
        if (snapshot.Set.Policies.Count == 0)
        {
            html.Append("<p>None.</p>");
        }
        foreach (var policy in snapshot.Set.Policies.OrderBy(static p => p.Id, StringComparer.Ordinal))
        {
            var selects = policy.ServiceAccount is { } sa ? $"service account {sa}" : "every workload";
            var from = policy.Location is { } l ? $", from {l.File}:{l.Line}" : "";
            html.Append(CultureInfo.InvariantCulture, $"<section id=\"{E(Anchor(policy.Id))}\"><h3>{E(policy.Id)}</h3>")
                .Append(CultureInfo.InvariantCulture, $"<p>{E(policy.Action.ToString().ToLowerInvariant())}, {E(policy.Mode.ToString().ToLowerInvariant())}; selects {E(selects)} in namespace {E(policy.Namespace)}; rules {E(string.Join(", ", policy.Rules.Select(static r => r.Name)))}{E(from)}</p>")
                .Append(CultureInfo.InvariantCulture, $"<pre>{E(PolicyYaml.Write([policy]))}</pre></section>");
        }
        return html.ToString();
    }

    /// <summary>Each document: accepted or refused (its last good version stays in force), with every lint error.</summary>
    public static string Documents(PolicySnapshot snapshot)
    {
        var html = new StringBuilder("<table id=\"documents\"><tr><th>document</th><th>state</th><th>policies in force</th><th>errors</th></tr>");
        foreach (var file in snapshot.Files)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<tr class=\"{(file.Accepted ? "ok" : "refused")}\"><td>{E(file.File)}</td><td>{(file.Accepted ? "accepted" : "refused")}</td><td>{E(string.Join(", ", file.PoliciesInForce))}</td><td>{E(string.Join("\n", file.Errors))}</td></tr>");
        }
        return html.Append("</table>").ToString();
    }
}
