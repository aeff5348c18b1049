using System.Text.Json;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.FlowCollection;
using MeshGuard.FlowLog;
using MeshGuard.FlowStore;
using MeshGuard.Tests.Common;

namespace MeshGuard.ControlPlane.Tests.FlowCollection;

/// <summary>
/// The control plane's copy of each workload's flow log: taken only whole and chained on, kept across a
/// restart of the control plane, bounded by its file count, and read back for the console with each log's
/// verification.
/// </summary>
public sealed class CollectedFlowLogsTests : IDisposable
{
    private const string Orders = "spiffe://mesh.local/ns/shop/sa/orders";
    private const string Frontend = "spiffe://mesh.local/ns/shop/sa/frontend";
    private readonly TempDirectory _root = new();
    private readonly DataDirectory _data;
    private readonly CertificateAuthority _ca;
    private readonly TestCa _testCa;
    private readonly string _sidecarLog;

    public CollectedFlowLogsTests()
    {
        _data = new DataDirectory(Path.Combine(_root.Path, "cp"));
        _ca = CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System);
        _testCa = TestCa.FromFiles("mesh.local", _data.RootCertificate, _data.RootKey, _data.IntermediateCertificate, _data.IntermediateKey);
        _sidecarLog = Path.Combine(_root.Path, "orders-flows");
    }

    public void Dispose() => _root.Dispose();

    /// <summary>Writes <paramref name="records"/> inbound calls from frontend, with a checkpoint every ten and on close.</summary>
    private void WriteLog(int records, string decision = "allow", long maxFileBytes = 10 * 1024 * 1024, int retainFiles = 100)
    {
        using var writer = new FlowLogWriter(_sidecarLog, new TestCheckpointSigner(_testCa, Orders), TimeProvider.System, maxFileBytes, retainFiles);
        writer.Open();
        TestFlowLog.Append(writer, records, decision);
    }

    private void UploadAll(CollectedFlowLogs collected, FlowLogTail tail)
    {
        while (tail.Read(1 << 20) is { } segment)
        {
            var verdict = collected.Append(Orders, segment.Lines, segment.Discontinuous, _ca.Bundle);
            Assert.True(verdict.Refusal is null, verdict.Refusal);
            tail.Advance(segment);
        }
    }

    [Fact]
    public void TheCopyIsTheLogByteForByteAndAControlPlaneRestartChainsOnWhereItEnded()
    {
        WriteLog(25);
        var tail = new FlowLogTail(_sidecarLog);
        tail.Seek(1);
        UploadAll(new CollectedFlowLogs(_data), tail);
        Assert.Equal(TestFlowLog.Bytes(_sidecarLog), TestFlowLog.Bytes(_data.CollectedFlowLog(Orders)));

        // A new control plane over the same data directory knows where the copy ends.
        var restarted = new CollectedFlowLogs(_data);
        Assert.Equal(FlowLogVerifier.Verify(_sidecarLog, _ca.Bundle).LastSeq, restarted.HeldSeq(Orders));
        WriteLog(5); // the sidecar restarted too: a new file, chained on
        UploadAll(restarted, tail);
        Assert.Equal(TestFlowLog.Bytes(_sidecarLog), TestFlowLog.Bytes(_data.CollectedFlowLog(Orders)));
        Assert.True(FlowLogVerifier.Verify(_data.CollectedFlowLog(Orders), _ca.Bundle).IsOk);
        Assert.Equal(0, restarted.HeldSeq(Frontend));
        Assert.Equal([(Orders, _data.CollectedFlowLog(Orders))], restarted.Workloads());
    }

    [Fact]
    public void ARefusedSegmentLeavesTheCopyAsItWasAndADiscontinuousOneStartsANewFileThatVerifyShowsAsAGap()
    {
        WriteLog(10);
        var tail = new FlowLogTail(_sidecarLog);
        tail.Seek(1);
        var collected = new CollectedFlowLogs(_data);
        UploadAll(collected, tail);
        var held = TestFlowLog.Bytes(_data.CollectedFlowLog(Orders));

        // Frontend uploading orders' log, and orders skipping ahead without saying so, are both refused.
        WriteLog(10);
        var first = tail.Read(1 << 20)!;
        Assert.Contains($"is not a record of the caller {Frontend}", collected.Append(Frontend, first.Lines, false, _ca.Bundle).Refusal, StringComparison.Ordinal);
        tail.Advance(first);
        WriteLog(10);
        var skipped = tail.Read(1 << 20)!;
        Assert.StartsWith("line 1 has seq", collected.Append(Orders, skipped.Lines, false, _ca.Bundle).Refusal, StringComparison.Ordinal);
        Assert.Equal(held, TestFlowLog.Bytes(_data.CollectedFlowLog(Orders)));

        // Said so: taken, in a file of its own; verify of the copy reports the lines it never got.
        Assert.Null(collected.Append(Orders, skipped.Lines, true, _ca.Bundle).Refusal);
        Assert.Equal(2, FlowLogFormat.Files(_data.CollectedFlowLog(Orders)).Count);
        var report = FlowLogVerifier.Verify(_data.CollectedFlowLog(Orders), _ca.Bundle);
        Assert.Equal(FlowProblemKind.Missing, Assert.Single(report.Problems).Kind);
    }

    [Fact]
    public void TheCopyKeepsOnlyItsNewestFiles()
    {
        WriteLog(200);
        var tail = new FlowLogTail(_sidecarLog);
        tail.Seek(1);
        var collected = new CollectedFlowLogs(_data, maxFileBytes: 4_000, retainFiles: 3);
        while (tail.Read(8_000) is { } segment)
        {
            Assert.Null(collected.Append(Orders, segment.Lines, segment.Discontinuous, _ca.Bundle).Refusal);
            tail.Advance(segment);
        }
        Assert.Equal(3, FlowLogFormat.Files(_data.CollectedFlowLog(Orders)).Count);
        Assert.Equal(FlowLogVerifier.Verify(_sidecarLog, _ca.Bundle).LastSeq, collected.HeldSeq(Orders));
    }

    [Fact]
    public async Task TheConsoleReadsRecordsOfTheWindowNewestFirstAndSeesACopyChangedOnDiskAsNotVerified()
    {
        WriteLog(12, decision: "deny");
        var tail = new FlowLogTail(_sidecarLog);
        tail.Seek(1);
        var collected = new CollectedFlowLogs(_data);
        UploadAll(collected, tail);
        var flows = new CollectedFlows(collected, _ca);

        var read = await flows.ReadAsync(new StoredFlowFilter(Since: DateTimeOffset.UtcNow.AddMinutes(-5)), CancellationToken.None);
        Assert.Equal(12, read.Count);
        Assert.True(read.Zip(read.Skip(1)).All(p => p.First.Time >= p.Second.Time));
        Assert.All(read, f => Assert.True(f.Log.Verified, f.Log.Summary));
        Assert.Equal("deny", read[0].Record.GetProperty("decision").GetString());
        Assert.Empty(await flows.ReadAsync(new StoredFlowFilter(Since: DateTimeOffset.UtcNow.AddMinutes(1)), CancellationToken.None));

        var file = FlowLogFormat.Files(_data.CollectedFlowLog(Orders))[0];
        File.WriteAllText(file, File.ReadAllText(file).Replace("/orders/3\"", "/orders/4\"", StringComparison.Ordinal));
        var log = Assert.Single(await flows.LogsAsync(CancellationToken.None));
        Assert.False(log.Verified);
        Assert.Contains("modified", log.Summary, StringComparison.Ordinal);
        using var line = JsonDocument.Parse((await flows.ReadAsync(new StoredFlowFilter(), CancellationToken.None))[0].Line);
        Assert.Equal("flow", line.RootElement.GetProperty("kind").GetString());
    }
}
