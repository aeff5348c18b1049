using MeshGuard.FlowLog;
using MeshGuard.Policy.Advice;

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
                if (ObservedRequest.FromFlowRecord(r) is { } request)
                {
                    observed.Add(request);
                }
            }
        }
        return observed;
    }
}
