using MeshGuard.FlowLog;

namespace MeshGuard.Tests.Common;

/// <summary>Flow logs for tests: calls from frontend to orders written as orders' sidecar writes them, and a log's bytes.</summary>
public static class TestFlowLog
{
    public const string Orders = "spiffe://mesh.local/ns/shop/sa/orders";
    public const string Frontend = "spiffe://mesh.local/ns/shop/sa/frontend";

    /// <summary>
    /// Appends <paramref name="records"/> inbound GETs from frontend to <paramref name="callee"/> (orders unless
    /// named), a signed checkpoint after every <paramref name="checkpointEvery"/>, then flushes.
    /// </summary>
    public static void Append(FlowLogWriter writer, int records, string decision = "allow", int checkpointEvery = 10, string callee = Orders)
    {
        for (var i = 0; i < records; i++)
        {
            writer.Append(new FlowRecord
            {
                Time = DateTimeOffset.UtcNow,
                Direction = FlowDirection.Inbound,
                RequestId = $"req-{writer.Seq}",
                SourceId = Frontend,
                DestId = callee,
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

    /// <summary>
    /// Writes (or, where the directory holds a log, continues) <paramref name="callee"/>'s log in
    /// <paramref name="directory"/>: <paramref name="records"/> inbound calls from frontend, signed by an SVID of
    /// <paramref name="ca"/>, a checkpoint every ten and at the close. Returns the directory.
    /// </summary>
    public static string WriteInbound(string directory, TestCa ca, string callee, int records)
    {
        using var writer = new FlowLogWriter(directory, new TestCheckpointSigner(ca, callee), TimeProvider.System, 10 * 1024 * 1024, 100);
        writer.Open();
        Append(writer, records, callee: callee);
        return directory;
    }

    /// <summary>The segments a sidecar's uploader would send of the log in <paramref name="directory"/>, from seq <paramref name="from"/>.</summary>
    public static List<FlowLogSegment> Segments(string directory, long from = 1)
    {
        var tail = new FlowLogTail(directory);
        tail.Seek(from);
        var segments = new List<FlowLogSegment>();
        while (tail.Read(1 << 20) is { } segment)
        {
            segments.Add(segment);
            tail.Advance(segment);
        }
        return segments;
    }

    /// <summary>Every file of a log directory, in order, as one run of bytes.</summary>
    public static byte[] Bytes(string directory) => FlowLogFormat.Files(directory).SelectMany(File.ReadAllBytes).ToArray();

    /// <summary>An inbound call from frontend to orders as a forger would write its body (no kind, seq or prev).</summary>
    public const string ForgedCall = "\"direction\":\"inbound\",\"source_id\":\"spiffe://mesh.local/ns/shop/sa/frontend\",\"dest_id\":\"spiffe://mesh.local/ns/shop/sa/orders\",\"method\":\"GET\",\"path\":\"/x\",\"status\":200,\"decision\":\"allow\"";

    /// <summary>
    /// Flow lines that chain correctly (each with the next seq and the hash of the line before as prev), made up with
    /// no key at all: what a forger can always write. <paramref name="firstPrev"/> is the hash the first line continues.
    /// </summary>
    public static string Forged(long firstSeq, string firstPrev, params string[] bodies)
    {
        var text = new System.Text.StringBuilder();
        var prev = firstPrev;
        for (var i = 0; i < bodies.Length; i++)
        {
            var line = $"{{\"kind\":\"flow\",\"seq\":{firstSeq + i},\"prev\":\"{prev}\",{bodies[i]}}}";
            text.Append(line).Append('\n');
            prev = FlowLogFormat.HashHex(System.Text.Encoding.UTF8.GetBytes(line));
        }
        return text.ToString();
    }

    /// <summary>The hash a line appended after the last line of <paramref name="file"/> must name as its prev.</summary>
    public static string HashOfLastLine(string file) => FlowLogFormat.HashHex(System.Text.Encoding.UTF8.GetBytes(File.ReadAllLines(file)[^1]));
}
