using System.Text;
using MeshGuard.Tests.Common;

namespace MeshGuard.FlowLog.Tests;

/// <summary>
/// The upload path of a flow log: the sidecar's reader cuts it into segments that end at signed records, and
/// the control plane's check takes a segment only when it chains on to what it holds and is signed by the caller.
/// </summary>
public sealed class FlowSegmentTests : IDisposable
{
    private const string Orders = "spiffe://mesh.local/ns/shop/sa/orders";
    private const string Frontend = "spiffe://mesh.local/ns/shop/sa/frontend";
    private static readonly TestCa Ca = new();
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private FlowLogWriter Open(string workload = Orders, long maxFileBytes = 10 * 1024 * 1024, int retainFiles = 100)
    {
        var writer = new FlowLogWriter(_dir.Path, new TestCheckpointSigner(Ca, workload), TimeProvider.System, maxFileBytes, retainFiles);
        writer.Open();
        return writer;
    }

    private static void Append(FlowLogWriter writer, int records, int checkpointEvery = 10) => TestFlowLog.Append(writer, records, checkpointEvery: checkpointEvery);

    private byte[] WholeLog() => TestFlowLog.Bytes(_dir.Path);

    /// <summary>Uploads every segment there is, as the sidecar would, into <paramref name="copy"/>.</summary>
    private static (long Seq, string Hash)? Upload(FlowLogTail tail, MemoryStream copy, (long Seq, string Hash)? held, string caller = Orders, int maxBytes = 1 << 20)
    {
        while (tail.Read(maxBytes) is { } segment)
        {
            var verdict = FlowSegmentCheck.Check(segment.Lines, held, segment.Discontinuous, Ca.Bundle, caller);
            Assert.True(verdict.Refusal is null, verdict.Refusal);
            copy.Write(segment.Lines.Span);
            held = (verdict.LastSeq, verdict.LastHash);
            tail.Advance(segment);
        }
        return held;
    }

    [Fact]
    public void SegmentsEndAtSignedRecordsAndTheirCopyIsTheLogByteForByte()
    {
        using var writer = Open();
        Append(writer, 25); // start, 10, checkpoint, 10, checkpoint, 5 not yet signed
        var tail = new FlowLogTail(_dir.Path);
        tail.Seek(1);
        var first = tail.Read(1 << 20)!;
        Assert.Equal((1, 23), (first.FirstSeq, first.LastSeq));
        Assert.False(first.Discontinuous);

        var copy = new MemoryStream();
        var held = Upload(tail, copy, null);
        Assert.Equal(23, held!.Value.Seq);
        Assert.Null(tail.Read(1 << 20)); // the last five wait for their checkpoint

        Append(writer, 3);
        writer.Dispose(); // the final checkpoint
        held = Upload(tail, copy, held);
        Assert.Equal(32, held!.Value.Seq); // 8 more records and the final checkpoint
        Assert.Equal(WholeLog(), copy.ToArray());
    }

    [Fact]
    public void TheReaderFollowsTheWriterAcrossFilesAndSmallBudgetsStillEndAtSignedRecords()
    {
        using (var writer = Open(maxFileBytes: 2_000))
        {
            Append(writer, 60, checkpointEvery: 4);
        }
        Assert.True(FlowLogFormat.Files(_dir.Path).Count > 3);
        var tail = new FlowLogTail(_dir.Path);
        tail.Seek(1);
        var copy = new MemoryStream();
        var held = Upload(tail, copy, null, maxBytes: 8_000);
        Assert.Equal(WholeLog(), copy.ToArray());
        Assert.Equal(FlowLogVerifier.Verify(_dir.Path, Ca.Bundle).LastSeq, held!.Value.Seq);
    }

    [Fact]
    public void AReaderSeekingASeqRetentionDeletedStartsAtTheOldestLineAndSaysItIsDiscontinuous()
    {
        using (var writer = Open(maxFileBytes: 2_000, retainFiles: 2))
        {
            Append(writer, 60, checkpointEvery: 4);
        }
        var tail = new FlowLogTail(_dir.Path);
        tail.Seek(5);
        var segment = tail.Read(1 << 20)!;
        Assert.True(segment.Discontinuous);
        Assert.True(segment.FirstSeq > 5);
        // The receiver holds seq 4 of this log; a discontinuous segment is taken without chaining on to it.
        Assert.Null(FlowSegmentCheck.Check(segment.Lines, (4, FlowLogFormat.GenesisHash), true, Ca.Bundle, Orders).Refusal);
        Assert.NotNull(FlowSegmentCheck.Check(segment.Lines, (4, FlowLogFormat.GenesisHash), false, Ca.Bundle, Orders).Refusal);
    }

    [Fact]
    public void AReaderSeekingJustPastTheEndWaitsForTheNextSignedRecord()
    {
        using var writer = Open();
        Append(writer, 10); // start, 10 flows, checkpoint: seq 1..12
        var tail = new FlowLogTail(_dir.Path);
        tail.Seek(13);
        Assert.Null(tail.Read(1 << 20));
        Append(writer, 10);
        var segment = tail.Read(1 << 20)!;
        Assert.Equal((13, 23), (segment.FirstSeq, segment.LastSeq));
        Assert.False(segment.Discontinuous);
    }

    [Fact]
    public void WhenNoSignedRecordEndsWithinTheBudgetTheSegmentReachesToTheFirstOneWithinTheHardLimit()
    {
        using (var writer = Open())
        {
            Append(writer, 30, checkpointEvery: 30); // start, 30 flows, checkpoint: seq 1..32
        }
        var tail = new FlowLogTail(_dir.Path);
        tail.Seek(2);
        Assert.Null(tail.Read(2_000)); // thirty flow lines are more than 2 KB, and none is signed
        var segment = tail.Read(2_000, hardMaxBytes: 1 << 20)!;
        Assert.Equal((2, 32), (segment.FirstSeq, segment.LastSeq));
        Assert.Null(FlowSegmentCheck.Check(segment.Lines, null, false, Ca.Bundle, Orders).Refusal);
    }

    [Fact]
    public void ABacklogGoesUpInSegmentsOfAboutTheBudgetEvenWhenTheHardLimitWouldHoldItAll()
    {
        using (var writer = Open())
        {
            Append(writer, 300, checkpointEvery: 10); // thirty checkpoints, a block of ten flows about 6 KB
        }
        var whole = WholeLog();
        // A segment ends at a signed record, so there can be no more segments than signed records: the start, the
        // thirty checkpoints, and any the writer added on its clock.
        var signedRecords = 0;
        foreach (var range in whole.AsSpan().Split((byte)'\n'))
        {
            signedRecords += FlowLineHead.TryRead(whole.AsSpan()[range], out var head) && head.IsSignedRecord ? 1 : 0;
        }
        var tail = new FlowLogTail(_dir.Path);
        tail.Seek(1);
        var copy = new MemoryStream();
        var segments = 0;
        while (tail.Read(8_000, hardMaxBytes: 1 << 20) is { } segment)
        {
            // Within the budget, or the budget and the lines up to its first signed record beyond it.
            Assert.InRange(segment.Lines.Length, 1, 8_000 + whole.Length / 30);
            copy.Write(segment.Lines.Span);
            tail.Advance(segment);
            segments++;
        }
        // Not one segment as long as the hard limit: about one per budget's worth of log.
        Assert.InRange(segments, whole.Length / 8_000, signedRecords);
        Assert.Equal(whole, copy.ToArray());
    }

    private byte[] Segment()
    {
        using (var writer = Open())
        {
            Append(writer, 10);
        }
        var tail = new FlowLogTail(_dir.Path);
        tail.Seek(1);
        return tail.Read(1 << 20)!.Lines.ToArray();
    }

    private static byte[] Lines(IEnumerable<string> lines) => Encoding.UTF8.GetBytes(string.Concat(lines.Select(l => l + "\n")));

    [Fact]
    public void ASegmentWithALineLeftOutChangedOrNotEndingSignedIsRefusedWithTheReason()
    {
        var lines = Encoding.UTF8.GetString(Segment()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Null(FlowSegmentCheck.Check(Lines(lines), null, false, Ca.Bundle, Orders).Refusal);

        var dropped = lines.Where((_, i) => i != 4);
        Assert.Equal("line 5 has seq 6, expected 5", FlowSegmentCheck.Check(Lines(dropped), null, false, Ca.Bundle, Orders).Refusal);

        var changed = lines.Select((l, i) => i == 3 ? l.Replace("/orders/3", "/orders/X", StringComparison.Ordinal) : l);
        Assert.Equal("line 5 (seq 5) does not chain to the line before it", FlowSegmentCheck.Check(Lines(changed), null, false, Ca.Bundle, Orders).Refusal);

        Assert.Equal("a segment must end with a signed record (start or checkpoint)", FlowSegmentCheck.Check(Lines(lines[..^1]), null, false, Ca.Bundle, Orders).Refusal);
        Assert.Equal("a segment is whole lines, each ending in a newline", FlowSegmentCheck.Check(Lines(lines).AsMemory(..^1), null, false, Ca.Bundle, Orders).Refusal);
        Assert.Equal("line 2 of the segment is not a flow-log record", FlowSegmentCheck.Check(Lines([lines[0], "{\"kind\":", lines[^1]]), null, false, Ca.Bundle, Orders).Refusal);
    }

    [Fact]
    public void ASegmentSignedByAnotherWorkloadThanTheCallerOrNotContinuingTheCopyIsRefused()
    {
        var segment = Segment();
        Assert.Equal($"line 1 (seq 1) is not a record of the caller {Frontend}: it is not the local party",
            FlowSegmentCheck.Check(segment, null, false, Ca.Bundle, Frontend).Refusal);
        // A segment of nothing but the closing record still has to be signed by the caller.
        var closing = Encoding.UTF8.GetString(segment).Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        var onlyClosing = Lines([closing.Replace(Orders, Frontend, StringComparison.Ordinal)]);
        Assert.StartsWith("the closing record (seq 12): ", FlowSegmentCheck.Check(onlyClosing, null, false, Ca.Bundle, Frontend).Refusal, StringComparison.Ordinal);
        Assert.Equal("line 1 has seq 1, expected 41", FlowSegmentCheck.Check(segment, (40, FlowLogFormat.GenesisHash), false, Ca.Bundle, Orders).Refusal);
        Assert.Equal("line 1 (seq 1) does not chain to the line before it",
            FlowSegmentCheck.Check(segment, (0, FlowLogFormat.HashHex("another log"u8)), false, Ca.Bundle, Orders).Refusal);
        var foreign = new TestCa();
        Assert.StartsWith("the closing record (seq 12): ", FlowSegmentCheck.Check(segment, null, false, foreign.Bundle, Orders).Refusal, StringComparison.Ordinal);
    }

    [Fact]
    public void ASegmentSignedByTheCallerWithARecordOfAnotherWorkloadIsRefused()
    {
        using (var writer = Open())
        {
            // orders' own sidecar key signs it, but one record claims payments received the call.
            writer.Append(new FlowRecord { Time = DateTimeOffset.UtcNow, Direction = FlowDirection.Inbound, SourceId = Frontend, DestId = "spiffe://mesh.local/ns/shop/sa/payments", Method = "POST", Path = "/charge", Status = 200, Decision = "allow" });
            writer.Append(new FlowRecord { Time = DateTimeOffset.UtcNow, Direction = FlowDirection.Outbound, SourceId = Orders, DestId = Frontend, Method = "GET", Path = "/", Status = 200 });
            writer.Checkpoint();
        }
        var tail = new FlowLogTail(_dir.Path);
        tail.Seek(0);
        var segment = tail.Read(1 << 20)!.Lines;
        Assert.Equal($"line 2 (seq 2) is not a record of the caller {Orders}: it is not the local party",
            FlowSegmentCheck.Check(segment, null, false, Ca.Bundle, Orders).Refusal);
    }
}
