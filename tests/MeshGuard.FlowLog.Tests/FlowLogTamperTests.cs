using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using MeshGuard.FlowLog;
using MeshGuard.Tests.Common;

namespace MeshGuard.FlowLog.Tests;

/// <summary>A log written by the real writer verifies; each kind of tampering is reported where it happened.</summary>
public sealed class FlowLogTamperTests : IDisposable
{
    private const string Orders = "spiffe://mesh.local/ns/shop/sa/orders";
    private static readonly TestCa Ca = new();
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static FlowRecord Flow(int i) => new()
    {
        Time = DateTimeOffset.UtcNow,
        DurationMs = 1.5,
        Direction = FlowDirection.Inbound,
        RequestId = $"req-{i}",
        SourceId = "spiffe://mesh.local/ns/shop/sa/frontend",
        DestId = Orders,
        DestService = "orders",
        DestPort = 8080,
        Protocol = "HTTP/2",
        Method = "GET",
        Path = $"/orders/{i}",
        Status = 200,
        Decision = "allow",
        Policy = "shop/orders-callers",
        Rule = "frontend",
    };

    private void Write(int records, ICheckpointSigner? signer = null, long maxFileBytes = 10 * 1024 * 1024, int checkpointEvery = 10, int retainFiles = 100)
    {
        using var writer = new FlowLogWriter(_dir.Path, signer ?? new TestCheckpointSigner(Ca, Orders), TimeProvider.System, maxFileBytes, retainFiles);
        writer.Open();
        for (var i = 0; i < records; i++)
        {
            writer.Append(Flow(i));
            if (writer.SinceCheckpoint >= checkpointEvery)
            {
                writer.Checkpoint();
            }
        }
    }

    private FlowLogReport Verify() => FlowLogVerifier.Verify(_dir.Path, Ca.Bundle);

    private string OnlyFile => Assert.Single(FlowLogFormat.Files(_dir.Path));

    private static FlowLogProblem Single(FlowLogReport report, FlowProblemKind kind) =>
        Assert.Single(report.Problems, p => p.Kind == kind);

    [Fact]
    public void AnUntouchedLogVerifiesWithItsCounts()
    {
        Write(25);
        var report = Verify();
        Assert.True(report.IsOk, string.Join("\n", report.Problems));
        Assert.Equal(25, report.Flows);
        Assert.Equal(1 + 2 + 1, report.Checkpoints); // start, two at 10 and 20, the final one at close
        Assert.Equal(Orders, report.Workload);
        Assert.Equal(29, report.LastSeq);
    }

    [Fact]
    public void TheChainContinuesAcrossRotationAndRestart()
    {
        Write(40, maxFileBytes: 4096);
        Write(15, maxFileBytes: 4096);
        var files = FlowLogFormat.Files(_dir.Path);
        Assert.True(files.Count > 3, $"only {files.Count} files");
        var report = Verify();
        Assert.True(report.IsOk, string.Join("\n", report.Problems));
        Assert.Equal(55, report.Flows);
    }

    [Fact]
    public void RetentionDeletesTheOldestFilesAndTheRestStillVerifies()
    {
        Write(60, maxFileBytes: 4096, retainFiles: 3);
        Assert.Equal(3, FlowLogFormat.Files(_dir.Path).Count);
        var report = Verify();
        Assert.True(report.IsOk, string.Join("\n", report.Problems));
        Assert.True(report.Flows < 60);
    }

    [Fact]
    public void AFlippedByteIsReportedAsModifiedAtItsLine()
    {
        Write(20);
        var bytes = File.ReadAllBytes(OnlyFile);
        var lines = Encoding.UTF8.GetString(bytes).Split('\n');
        var at = Encoding.UTF8.GetByteCount(string.Join('\n', lines[..5]) + "\n") + lines[5].IndexOf("/orders/", StringComparison.Ordinal) + 8;
        bytes[at] ^= 0x01; // "/orders/4" becomes "/orders/5"
        File.WriteAllBytes(OnlyFile, bytes);
        var problem = Single(Verify(), FlowProblemKind.Modified);
        Assert.Equal(6, problem.Line);
    }

    [Fact]
    public void ALogMadeUpFromNothingHasNoProblemButProvesNothing()
    {
        File.WriteAllText(Path.Combine(_dir.Path, FlowLogFormat.FileName(1)), TestFlowLog.Forged(0, FlowLogFormat.GenesisHash, TestFlowLog.ForgedCall, TestFlowLog.ForgedCall, TestFlowLog.ForgedCall));
        var report = Verify();
        Assert.Null(report.LastSignedSeq);
        Assert.Equal(3, report.UnsignedTail);
        Assert.Contains("no signed record: nothing in this log is proven", report.Coverage, StringComparison.Ordinal);
    }

    [Fact]
    public void ARecordAppendedAfterTheLastCheckpointIsTheUncoveredTail()
    {
        Write(20);
        var before = Verify();
        Assert.True(before.IsOk);
        Assert.Equal(0, before.UnsignedTail);
        File.AppendAllText(OnlyFile, TestFlowLog.Forged(before.LastSeq!.Value + 1, TestFlowLog.HashOfLastLine(OnlyFile), TestFlowLog.ForgedCall));
        var after = Verify();
        Assert.True(after.IsOk, string.Join("\n", after.Problems));
        Assert.Equal(before.LastSeq, after.LastSignedSeq);
        Assert.Equal(1, after.UnsignedTail);
        Assert.Contains($"1 record(s) after seq {before.LastSeq} are covered by no signature", after.Coverage, StringComparison.Ordinal);
    }

    [Fact]
    public void AFlowRecordOfAnotherWorkloadInThisLogIsReported()
    {
        Write(5);
        var seq = Verify().LastSeq!.Value;
        var paymentsCall = TestFlowLog.ForgedCall.Replace("sa/orders", "sa/payments", StringComparison.Ordinal);
        File.AppendAllText(OnlyFile, TestFlowLog.Forged(seq + 1, TestFlowLog.HashOfLastLine(OnlyFile), paymentsCall));
        var problem = Single(Verify(), FlowProblemKind.ForeignRecord);
        Assert.Contains("record spiffe://mesh.local/ns/shop/sa/payments as the local party", problem.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void ADeletedLineIsReportedAsMissing()
    {
        Write(20);
        var lines = File.ReadAllLines(OnlyFile).ToList();
        lines.RemoveAt(7);
        File.WriteAllLines(OnlyFile, lines);
        var problem = Single(Verify(), FlowProblemKind.Missing);
        Assert.Equal(8, problem.Line);
        Assert.Contains("1 record(s) before this one are missing", problem.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void TwoSwappedLinesAreReportedAsReordered()
    {
        Write(20);
        var lines = File.ReadAllLines(OnlyFile);
        (lines[4], lines[5]) = (lines[5], lines[4]);
        File.WriteAllLines(OnlyFile, lines);
        var report = Verify();
        Assert.Contains(report.Problems, p => p.Kind == FlowProblemKind.Reordered && p.Line == 6);
    }

    [Fact]
    public void ATruncatedFileIsReportedAsTruncated()
    {
        Write(20);
        var bytes = File.ReadAllBytes(OnlyFile);
        File.WriteAllBytes(OnlyFile, bytes[..(bytes.Length - 40)]);
        var problem = Single(Verify(), FlowProblemKind.Truncated);
        Assert.Equal(File.ReadAllLines(OnlyFile).Length, problem.Line);
    }

    [Fact]
    public void AFileReplacedByAnotherSidecarsIsReported()
    {
        using var other = new TempDirectory();
        using (var writer = new FlowLogWriter(other.Path, new TestCheckpointSigner(Ca, "spiffe://mesh.local/ns/shop/sa/payments"), TimeProvider.System, 4096))
        {
            writer.Open();
            for (var i = 0; i < 40; i++)
            {
                writer.Append(Flow(i));
            }
        }
        Write(40, maxFileBytes: 4096);
        var mine = FlowLogFormat.Files(_dir.Path);
        var theirs = FlowLogFormat.Files(other.Path);
        File.Copy(theirs[1], mine[1], overwrite: true);
        var report = Verify();
        Assert.Contains(report.Problems, p => p.Kind == FlowProblemKind.SignerMismatch || p.Kind == FlowProblemKind.Modified);
        Assert.False(report.IsOk);
    }

    [Fact]
    public void ACheckpointSignedWithAnotherWorkloadsKeyIsReported()
    {
        // A writer that claims to be orders but holds payments' SVID key.
        Write(5, signer: new TestCheckpointSigner(Ca, "spiffe://mesh.local/ns/shop/sa/payments", claimedWorkload: Orders));
        var report = Verify();
        Assert.Contains(report.Problems, p => p.Kind == FlowProblemKind.SignerMismatch && p.Detail.Contains("signed by spiffe://mesh.local/ns/shop/sa/payments", StringComparison.Ordinal));
    }

    [Fact]
    public void ACheckpointSignedByAForeignCaIsReportedAsSignerNotInBundle()
    {
        Write(5, signer: new TestCheckpointSigner(new TestCa(), Orders));
        Assert.Contains(Verify().Problems, p => p.Kind == FlowProblemKind.SignerNotInBundle);
    }

    [Fact]
    public void AnEditedSignatureIsReportedAsBadSignature()
    {
        Write(5);
        var text = File.ReadAllText(OnlyFile);
        var sig = text.IndexOf("\"sig\":\"", StringComparison.Ordinal) + 7;
        var replacement = text[sig] == 'A' ? 'B' : 'A';
        File.WriteAllText(OnlyFile, text[..sig] + replacement + text[(sig + 1)..]);
        var report = Verify();
        Assert.Contains(report.Problems, p => p.Kind == FlowProblemKind.BadSignature && p.Line == 1);
    }

    [Fact]
    public void AGapRecordIsReportedWithItsCount()
    {
        using (var writer = new FlowLogWriter(_dir.Path, new TestCheckpointSigner(Ca, Orders), TimeProvider.System))
        {
            writer.Open();
            writer.Append(Flow(1));
            writer.AppendGap(17);
            writer.Append(Flow(2));
        }
        var report = Verify();
        var problem = Single(report, FlowProblemKind.GapDeclared);
        Assert.Contains("lost 17 record(s)", problem.Detail, StringComparison.Ordinal);
        Assert.Equal(17, report.GapsDeclared);
    }

    [Fact]
    public void LogFilesAreOwnerOnly()
    {
        Write(1);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(OnlyFile));
    }
}
