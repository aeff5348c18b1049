using MeshGuard.FlowLog;

namespace MeshGuard.Tests.Common;

/// <summary>Flow logs for tests: calls from frontend to orders written as orders' sidecar writes them, and a log's bytes.</summary>
public static class TestFlowLog
{
    public const string Orders = "spiffe://mesh.local/ns/shop/sa/orders";
    public const string Frontend = "spiffe://mesh.local/ns/shop/sa/frontend";

    /// <summary>Appends <paramref name="records"/> inbound GETs from frontend, a signed checkpoint after every <paramref name="checkpointEvery"/>, then flushes.</summary>
    public static void Append(FlowLogWriter writer, int records, string decision = "allow", int checkpointEvery = 10)
    {
        for (var i = 0; i < records; i++)
        {
            writer.Append(new FlowRecord
            {
                Time = DateTimeOffset.UtcNow,
                Direction = FlowDirection.Inbound,
                RequestId = $"req-{writer.Seq}",
                SourceId = Frontend,
                DestId = Orders,
                Method = "GET",
                Path = $"/orders/{writer.Seq}",
                Status = decision == "allow" ? 200 : 403,
                Decision = decision,
                Policy = "shop/orders-callers",
                Rule = "frontend",
            });
            if (writer.SinceCheckpoint >= checkpointEvery)
            {
                writer.Checkpoint();
            }
        }
        writer.Flush();
    }

    /// <summary>Every file of a log directory, in order, as one run of bytes.</summary>
    public static byte[] Bytes(string directory) => FlowLogFormat.Files(directory).SelectMany(File.ReadAllBytes).ToArray();
}
