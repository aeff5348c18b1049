using System.Text.Json;
using MeshGuard.Spiffe;

namespace MeshGuard.FlowLog;

/// <summary>
/// The verifier's walk over one log, a line at a time, wherever the lines come from (a log's files, or rows of the
/// shared flow store): every line's seq follows the one before and its prev is the SHA-256 of the line before; every
/// signed record verifies; all flow records have the log's workload as their local party. Holds the line before,
/// never the log.
/// </summary>
public sealed class FlowChainVerification(TrustBundle bundle)
{
    private readonly FlowLogReport _report = new();
    // Parties other than the first seen, with where each first appears: a log holds one workload's records.
    private readonly Dictionary<string, (string File, int Line, long Seq, long Count)> _parties = new(StringComparer.Ordinal);
    private long? _expectedSeq;
    private string? _prevHash;
    private (string File, int Line, long? Seq) _previous = ("", 0, null);

    /// <summary>The next lines are a file (or chain) of their own.</summary>
    public void BeginFile() => _report.Files++;

    /// <summary>Checks one line; false when the rest of this file cannot be read as lines (a torn last line).</summary>
    public bool Line(string file, int lineNumber, ReadOnlyMemory<byte> bytes, bool complete = true)
    {
        var report = _report;
        if (!complete)
        {
            report.Add(file, lineNumber, null, FlowProblemKind.Truncated, "last line is incomplete (torn write)");
            return false;
        }
        var line = bytes.Span;
        var hash = FlowLogFormat.HashHex(line);

        JsonElement record = default;
        try
        {
            // Strings are decoded lazily; invalid UTF-8 or a line that is not an object (found by fuzzing)
            // is a changed line, not a crash of the verifier.
            if (System.Text.Unicode.Utf8.IsValid(line))
            {
                using var document = JsonDocument.Parse(bytes);
                record = document.RootElement.Clone();
            }
        }
        catch (JsonException)
        {
        }
        if (record.ValueKind != JsonValueKind.Object)
        {
            report.Add(file, lineNumber, null, FlowProblemKind.Modified, "line is not a valid JSON object");
            _prevHash = hash;
            _expectedSeq = _expectedSeq + 1;
            _previous = (file, lineNumber, null);
            return true;
        }
        var seq = record.TryGetProperty("seq", out var s) && s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out var n) ? n : -1;
        var prev = record.Text("prev");

        if (_expectedSeq is { } expected && seq != expected)
        {
            if (seq > expected)
            {
                report.Add(file, lineNumber, seq, FlowProblemKind.Missing, $"{seq - expected} record(s) before this one are missing (expected seq {expected})");
            }
            else
            {
                report.Add(file, lineNumber, seq, FlowProblemKind.Reordered, $"seq {seq} comes after seq {expected - 1}");
            }
        }
        else if (_prevHash is not null && prev != _prevHash)
        {
            report.Add(_previous.File, _previous.Line, _previous.Seq, FlowProblemKind.Modified, $"line no longer matches the hash that {file}:{lineNumber} recorded");
        }

        report.FirstSeq ??= seq;
        switch (record.Text("kind"))
        {
            case "flow":
                report.Flows++;
                var party = (record.Text("direction") == "inbound" ? record.Text("dest_id") : record.Text("source_id")) ?? "(none)";
                _parties[party] = _parties.TryGetValue(party, out var seen) ? seen with { Count = seen.Count + 1 } : (file, lineNumber, seq, 1);
                break;
            case "gap":
                var missing = record.Number("missing");
                report.GapsDeclared += missing;
                report.Add(file, lineNumber, seq, FlowProblemKind.GapDeclared, $"the sidecar lost {missing} record(s) here (queue full)");
                break;
            case "start" or "checkpoint":
                report.Checkpoints++;
                FlowLogVerifier.CheckSignature(report, record, bundle, file, lineNumber, seq, prev ?? "");
                break;
            default:
                report.Add(file, lineNumber, seq, FlowProblemKind.Modified, "unknown record kind");
                break;
        }
        _expectedSeq = seq + 1;
        _prevHash = hash;
        _previous = (file, lineNumber, seq);
        return true;
    }

    /// <summary>The report, once every line was given.</summary>
    public FlowLogReport Finish()
    {
        var report = _report;
        report.LastSeq = _expectedSeq - 1;
        report.LastHash = _prevHash;
        // Without a signed record the log has no owner to compare with (and is not proven at all).
        foreach (var (party, (file, line, seq, count)) in _parties)
        {
            if (report.Workload is { } workload && party != workload)
            {
                report.Add(file, line, seq, FlowProblemKind.ForeignRecord, $"{count} flow record(s) from here on record {party} as the local party, but this log is {workload}'s");
            }
        }
        return report;
    }
}
