using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using MeshGuard.Spiffe;

namespace MeshGuard.FlowLog;

/// <summary>
/// Checks a flow log directory: every line's seq follows the one before and its prev is the SHA-256 of the
/// line before; every signed record (start, checkpoint) verifies with a signer chain to the trust bundle
/// at its own time, and all are signed by the same workload. Reports each problem with file, line, seq and kind.
/// </summary>
public static class FlowLogVerifier
{
    public static FlowLogReport Verify(string directory, TrustBundle bundle)
    {
        var chain = new FlowChainVerification(bundle);
        foreach (var file in FlowLogFormat.Files(directory))
        {
            var name = Path.GetFileName(file);
            chain.BeginFile();
            foreach (var (lineNumber, bytes, complete) in FlowLogFormat.Lines(File.ReadAllBytes(file)))
            {
                if (!chain.Line(name, lineNumber, bytes, complete))
                {
                    break;
                }
            }
        }
        return chain.Finish();
    }

    internal static void CheckSignature(FlowLogReport report, JsonElement record, TrustBundle bundle, string file, int line, long seq, string prev)
    {
        var result = VerifySigned(record, bundle);
        if (result.Problem is { } problem)
        {
            report.Add(file, line, seq, problem, result.Detail!);
            return;
        }
        var signer = result.Signer!;
        report.LastSignedSeq = seq;
        if (report.Workload is null)
        {
            report.Workload = signer;
        }
        else if (report.Workload != signer)
        {
            report.Add(file, line, seq, FlowProblemKind.SignerMismatch, $"signed by {signer}, but this log is {report.Workload}'s");
        }
    }

    /// <summary>
    /// Compares a log with the signed record the control plane witnessed last: the log must hold exactly
    /// that line. A log that ends before it was cut short; one that holds another line at its seq was changed.
    /// </summary>
    public static void CheckWitness(FlowLogReport report, string directory, byte[] witnessedLine)
    {
        using var witnessed = JsonDocument.Parse(witnessedLine);
        var seq = witnessed.RootElement.Number("seq");
        var wanted = FlowLogFormat.HashHex(witnessedLine);
        foreach (var file in FlowLogFormat.Files(directory))
        {
            foreach (var (_, line, complete) in FlowLogFormat.Lines(File.ReadAllBytes(file)))
            {
                if (complete && FlowLogFormat.HashHex(line.Span) == wanted)
                {
                    report.WitnessedSeq = seq;
                    return;
                }
            }
        }
        report.WitnessedSeq = seq;
        if (report.LastSeq is not { } last || last < seq)
        {
            report.Add(Path.GetFileName(FlowLogFormat.Files(directory).LastOrDefault() ?? directory), 0, report.LastSeq, FlowProblemKind.CutShort,
                $"the log ends at seq {report.LastSeq?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "(none)"}, but the control plane witnessed a signed record at seq {seq}");
        }
        else
        {
            report.Add("", 0, seq, FlowProblemKind.Modified, $"the signed record at seq {seq} is not the one the control plane witnessed");
        }
    }

    /// <summary>
    /// Checks one signed record (start or checkpoint) on its own: the signer chain verifies against the bundle
    /// at the record's time, the signature covers its kind, seq, prev, time and workload, and the signer is
    /// that workload. Used by the verifier and by the control plane's witness.
    /// </summary>
    public static SignedRecordCheck VerifySigned(JsonElement record, TrustBundle bundle)
    {
        var kind = record.Text("kind") ?? "";
        var time = record.Text("time") ?? "";
        var workload = record.Text("workload") ?? "";
        var seq = record.Number("seq");
        var prev = record.Text("prev") ?? "";
        var chainPem = record.Text("signer_chain") ?? "";
        var at = DateTimeOffset.TryParse(time, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var parsed) ? parsed : DateTimeOffset.UtcNow;
        var signer = VerifiedSigners.Find(bundle, chainPem, at);
        if (signer is null)
        {
            var chain = new X509Certificate2Collection();
            try
            {
                chain.ImportFromPem(chainPem);
            }
            catch (CryptographicException)
            {
                return SignedRecordCheck.Fail(FlowProblemKind.BadSignature, "signer chain is malformed");
            }
            if (chain.Count == 0)
            {
                return SignedRecordCheck.Fail(FlowProblemKind.BadSignature, "signer chain is missing");
            }
            var leaf = chain[0];
            var intermediates = new X509Certificate2Collection();
            for (var i = 1; i < chain.Count; i++)
            {
                intermediates.Add(chain[i]);
            }
            var verification = X509SvidVerifier.Verify(leaf, intermediates, bundle, at);
            if (!verification.IsValid)
            {
                return SignedRecordCheck.Fail(FlowProblemKind.SignerNotInBundle, verification.Error!);
            }
            signer = VerifiedSigners.Keep(bundle, chainPem, verification.Id!, leaf, intermediates);
        }
        byte[] signature;
        try
        {
            signature = Convert.FromBase64String(record.Text("sig") ?? "");
        }
        catch (FormatException)
        {
            return SignedRecordCheck.Fail(FlowProblemKind.BadSignature, "signature is not base64");
        }
        if (signer is null || signature.Length == 0 || !signer.Signed(FlowLogFormat.SignedPayload(kind, seq, prev, time, workload), signature))
        {
            return SignedRecordCheck.Fail(FlowProblemKind.BadSignature, "signature does not verify");
        }
        return signer.Id == workload
            ? new SignedRecordCheck(signer.Id, null, null)
            : SignedRecordCheck.Fail(FlowProblemKind.SignerMismatch, $"signed by {signer.Id} for workload {workload}");
    }
}

/// <summary>The outcome of checking one signed record: its signer, or the problem.</summary>
public readonly record struct SignedRecordCheck(string? Signer, FlowProblemKind? Problem, string? Detail)
{
    public static SignedRecordCheck Fail(FlowProblemKind kind, string detail) => new(null, kind, detail);
}

public enum FlowProblemKind
{
    Modified,
    Missing,
    Reordered,
    Truncated,
    BadSignature,
    SignerNotInBundle,
    SignerMismatch,
    GapDeclared,
    CutShort,
    ForeignRecord,
}

public sealed record FlowLogProblem(string File, int Line, long? Seq, FlowProblemKind Kind, string Detail)
{
    public override string ToString() =>
        $"{File}:{Line}: seq {(Seq is { } s ? s.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?")}: {KindText(Kind)}: {Detail}";

    public static string KindText(FlowProblemKind kind) => kind switch
    {
        FlowProblemKind.Modified => "modified",
        FlowProblemKind.Missing => "missing",
        FlowProblemKind.Reordered => "reordered",
        FlowProblemKind.Truncated => "truncated",
        FlowProblemKind.BadSignature => "bad signature",
        FlowProblemKind.SignerNotInBundle => "signer not in bundle",
        FlowProblemKind.SignerMismatch => "signer mismatch",
        FlowProblemKind.CutShort => "cut short of a witnessed checkpoint",
        FlowProblemKind.ForeignRecord => "not this workload's record",
        _ => "gap declared",
    };
}

public sealed class FlowLogReport
{
    public int Files { get; set; }
    public long Flows { get; set; }
    public long Checkpoints { get; set; }
    public long GapsDeclared { get; set; }
    public long? LastSeq { get; set; }
    public long? FirstSeq { get; set; }

    /// <summary>The SHA-256 (hex) of the last line: what the next line's prev, or a store's chain row, must hold.</summary>
    public string? LastHash { get; set; }

    /// <summary>The seq of the last record whose signature verified: it covers every record up to it through the chain.</summary>
    public long? LastSignedSeq { get; set; }

    /// <summary>Records no signature covers: all of them without a signed record, else those after the last one.</summary>
    public long UnsignedTail => LastSeq is not { } last ? 0 : LastSignedSeq is { } signed ? last - signed : last - (FirstSeq ?? 0) + 1;

    /// <summary>What the signatures prove, in words.</summary>
    public string Coverage => LastSignedSeq is { } signed
        ? $"signatures cover seq {FirstSeq} to {signed}" + (UnsignedTail > 0 ? $"; {UnsignedTail} record(s) after seq {signed} are covered by no signature yet" : "")
        : "no signed record: nothing in this log is proven";

    public string? Workload { get; set; }
    public long? WitnessedSeq { get; set; }
    public List<FlowLogProblem> Problems { get; } = [];
    public bool IsOk => Problems.Count == 0;

    /// <summary>One line a reviewer reads: what was checked, or the first problem.</summary>
    public string Summary => IsOk
        ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"verified: {Flows} flow records, {Checkpoints} signed, through seq {LastSeq}")
        : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Problems.Count} problem(s), first: {Problems[0]}");

    internal void Add(string file, int line, long? seq, FlowProblemKind kind, string detail) => Problems.Add(new FlowLogProblem(file, line, seq, kind, detail));
}
