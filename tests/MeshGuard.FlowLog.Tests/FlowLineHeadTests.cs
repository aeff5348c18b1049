using System.Text;
using System.Text.Json.Nodes;
using MeshGuard.Tests.Common;

namespace MeshGuard.FlowLog.Tests;

/// <summary>
/// What the chain and the control plane's check read of a line: one pass over the writers' own flat shape, the JSON
/// reader for anything else, and the same answer from both wherever the one pass answers.
/// </summary>
public sealed class FlowLineHeadTests : IDisposable
{
    private const string Orders = TestFlowLog.Orders;
    private const string Frontend = TestFlowLog.Frontend;
    private static readonly TestCa Ca = new();
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A log as a sidecar writes it: flow records of both directions, odd paths among them, and signed records.</summary>
    private string[] WrittenLines()
    {
        using (var writer = new FlowLogWriter(_dir.Path, new TestCheckpointSigner(Ca, Orders), TimeProvider.System))
        {
            writer.Open();
            TestFlowLog.Append(writer, 30, checkpointEvery: 10);
            writer.Append(new FlowRecord { Time = DateTimeOffset.UtcNow, Direction = FlowDirection.Outbound, SourceId = Orders, DestId = Frontend, Method = "GET", Path = "/ä\"q\\", Status = 200, DurationMs = 1.25 });
            writer.Append(new FlowRecord { Time = DateTimeOffset.UtcNow, Direction = FlowDirection.Inbound, SourceId = Frontend, DestId = Orders, Method = "POST", Path = "/x", Status = 403, Decision = "deny" });
            writer.AppendGap(3);
        }
        return Encoding.UTF8.GetString(TestFlowLog.Bytes(_dir.Path)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    [Fact]
    public void EveryLineTheWriterWritesWithoutEscapesIsReadInOnePassAsTheJsonReaderReadsIt()
    {
        var lines = WrittenLines();
        var onePass = 0;
        foreach (var text in lines)
        {
            var line = Encoding.UTF8.GetBytes(text);
            Assert.True(FlowLineHead.TryReadWithReader(line, out var read), text);
            if (FlowLineHead.TryReadFlat(line, out var flat))
            {
                onePass++;
                Assert.Equal(read, flat);
            }
            else
            {
                // Only the line with escapes in its path, and the signed records' PEM chains (escaped new lines), go to the reader.
                Assert.Contains('\\', text);
            }
        }
        Assert.Equal(lines.Length - lines.Count(l => l.Contains('\\', StringComparison.Ordinal)), onePass);
        Assert.InRange(onePass, 30, lines.Length);
    }

    [Fact]
    public void MutatedLinesReadInOnePassReadTheSameWithTheJsonReader()
    {
        var lines = WrittenLines().Select(Encoding.UTF8.GetBytes).ToArray();
        var random = new Random(2026_12_06);
        ReadOnlySpan<byte> alphabet = "{}[]\":,.-+eE0123456789 tfnrulsa\\\t\u007f"u8;
        int onePass = 0, refused = 0;
        for (var i = 0; i < 200_000; i++)
        {
            var line = lines[random.Next(lines.Length)].ToList();
            for (var edits = random.Next(1, 4); edits > 0; edits--)
            {
                var at = random.Next(line.Count);
                var octet = random.Next(8) == 0 ? (byte)random.Next(256) : alphabet[random.Next(alphabet.Length)];
                switch (random.Next(3))
                {
                    case 0: line[at] = octet; break;
                    case 1: line.Insert(at, octet); break;
                    default: line.RemoveAt(at); break;
                }
            }
            var mutated = line.ToArray();
            var byReader = FlowLineHead.TryReadWithReader(mutated, out var read);
            refused += byReader ? 0 : 1;
            if (FlowLineHead.TryReadFlat(mutated, out var flat))
            {
                onePass++;
                Assert.True(byReader, Encoding.UTF8.GetString(mutated));
                Assert.Equal(read, flat);
            }
        }
        // Both kinds of line were met many times: the test compares, it does not pass by reading nothing.
        Assert.InRange(onePass, 20_000, 200_000);
        Assert.InRange(refused, 20_000, 200_000);
    }

    [Fact]
    public void AnIdentityHiddenInANestedObjectDoesNotPassForTheLinesOwn()
    {
        // frontend's sidecar files a record saying orders received a call, with frontend's id one level down where a
        // reader that walked into nested objects would take it for the dest_id.
        var hidden = $"{{\"kind\":\"flow\",\"seq\":1,\"prev\":\"{FlowLogFormat.GenesisHash}\",\"direction\":\"inbound\",\"dest_id\":\"{Orders}\",\"source_id\":{{\"dest_id\":\"{Frontend}\"}}}}";
        Assert.True(FlowLineHead.TryRead(Encoding.UTF8.GetBytes(hidden), out var head));
        Assert.Equal(Orders, Encoding.UTF8.GetString(head.LocalParty(Encoding.UTF8.GetBytes(hidden))));

        var time = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", System.Globalization.CultureInfo.InvariantCulture);
        var prev = FlowLogFormat.HashHex(Encoding.UTF8.GetBytes(hidden));
        var (signature, chain) = new TestCheckpointSigner(Ca, Frontend).Sign(FlowLogFormat.SignedPayload("checkpoint", 2, prev, time, Frontend));
        var checkpoint = new JsonObject
        {
            ["kind"] = "checkpoint",
            ["time"] = time,
            ["workload"] = Frontend,
            ["count"] = 1,
            ["seq"] = 2,
            ["prev"] = prev,
            ["sig"] = Convert.ToBase64String(signature),
            ["signer_chain"] = chain,
        }.ToJsonString();
        var segment = Encoding.UTF8.GetBytes(hidden + "\n" + checkpoint + "\n");
        Assert.Equal($"line 1 (seq 1) is not a record of the caller {Frontend}: it is not the local party",
            FlowSegmentCheck.Check(segment, null, false, Ca.Bundle, Frontend).Refusal);
    }
}
