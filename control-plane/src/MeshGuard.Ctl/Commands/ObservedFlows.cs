using MeshGuard.FlowLog;
using MeshGuard.Policy.Advice;
using MeshGuard.Policy.Engine;

namespace MeshGuard.Ctl.Commands;

/// <summary>The inbound requests recorded in flow logs below a directory, as the policy advisers read them.</summary>
internal static class ObservedFlows
{
    public static List<ObservedRequest> Read(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new MeshGuard.CommandLine.CliUsageException($"{directory}: no such directory");
        }
        var observed = new List<ObservedRequest>();
        foreach (var file in FlowLogFormat.FilesBelow(directory))
        {
            foreach (var r in FlowLogReader.Records(File.ReadAllBytes(file)))
            {
                if (r.Text("kind") != "flow" || r.Text("direction") != "inbound" || r.Text("source_id") is not { } source || r.Text("dest_id") is not { } dest)
                {
                    continue;
                }
                observed.Add(new ObservedRequest(
                    source, dest, (int)r.Number("dest_port"), r.Text("method") ?? "", r.Text("path") ?? "",
                    r.Text("decision") == "allow" ? Verdict.Allow : Verdict.Deny,
                    r.Text("audit_decision") switch { "allow" => AuditVerdict.Allow, "deny" => AuditVerdict.Deny, _ => AuditVerdict.None },
                    r.Text("policy"), r.Text("rule"), r.Text("audit_policy"), r.Text("audit_rule")));
            }
        }
        return observed;
    }
}
