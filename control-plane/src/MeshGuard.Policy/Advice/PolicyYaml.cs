using System.Globalization;
using System.Text;
using MeshGuard.Policy.Model;

namespace MeshGuard.Policy.Advice;

/// <summary>Writes policies as AccessPolicy YAML documents that the parser reads back unchanged.</summary>
public static class PolicyYaml
{
    public static string Write(IEnumerable<AccessPolicy> policies, string? comment = null)
    {
        var text = new StringBuilder();
        var first = true;
        foreach (var policy in policies)
        {
            if (!first)
            {
                text.Append("---\n");
            }
            first = false;
            if (comment is not null)
            {
                text.Append("# ").Append(comment).Append('\n');
            }
            text.Append(CultureInfo.InvariantCulture, $"apiVersion: {Parsing.PolicyParser.ApiVersion}\n");
            text.Append(CultureInfo.InvariantCulture, $"kind: {Parsing.PolicyParser.Kind}\n");
            text.Append(CultureInfo.InvariantCulture, $"metadata: {{ name: {policy.Name}, namespace: {policy.Namespace} }}\n");
            text.Append("spec:\n");
            if (policy.ServiceAccount is not null)
            {
                text.Append(CultureInfo.InvariantCulture, $"  selector: {{ serviceAccount: {policy.ServiceAccount} }}\n");
            }
            text.Append(CultureInfo.InvariantCulture, $"  action: {(policy.Action == PolicyAction.Allow ? "allow" : "deny")}\n");
            text.Append(CultureInfo.InvariantCulture, $"  mode: {(policy.Mode == PolicyMode.Enforce ? "enforce" : "audit")}\n");
            text.Append("  rules:\n");
            foreach (var rule in policy.Rules)
            {
                text.Append(CultureInfo.InvariantCulture, $"    - name: {rule.Name}\n");
                text.Append("      from:\n");
                foreach (var source in rule.From)
                {
                    text.Append(source.Identity is not null ? $"        - identity: {source.Identity}\n" : $"        - namespace: {source.Namespace}\n");
                }
                if (rule.To.Count > 0)
                {
                    text.Append("      to:\n");
                    foreach (var to in rule.To)
                    {
                        var parts = new List<string>();
                        if (to.Ports.Count > 0)
                        {
                            parts.Add("ports: [" + string.Join(", ", to.Ports.Select(static p => p.ToString(CultureInfo.InvariantCulture))) + "]");
                        }
                        if (to.Methods.Count > 0)
                        {
                            parts.Add("methods: [" + string.Join(", ", to.Methods) + "]");
                        }
                        if (to.Paths.Count > 0)
                        {
                            parts.Add("paths: [" + string.Join(", ", to.Paths.Select(static p => "\"" + p.Text + "\"")) + "]");
                        }
                        text.Append("        - { ").Append(string.Join(", ", parts)).Append(" }\n");
                    }
                }
            }
        }
        return text.ToString();
    }
}
