using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace MeshGuard.FlowLog;

/// <summary>
/// The line format: one flat JSON object per line, snake_case keys. Every line carries <c>seq</c> (one more
/// than the line before, across files and restarts) and <c>prev</c>, the hex SHA-256 of the previous line's
/// bytes, so a line cannot be changed, dropped or moved without the next one disagreeing.
/// </summary>
public static class FlowLogFormat
{
    public const string FilePrefix = "flows-";
    public const string FileSuffix = ".jsonl";
    public const int HashHexLength = 64;

    /// <summary>The <c>prev</c> of the very first line of a log.</summary>
    public static readonly string GenesisHash = new('0', HashHexLength);

    private static readonly JsonWriterOptions WriterOptions = new() { Indented = false, SkipValidation = true };

    public static string FileName(long number) => FilePrefix + number.ToString("D6", CultureInfo.InvariantCulture) + FileSuffix;

    /// <summary>Every log file below a directory (several sidecars' logs), each directory's in order.</summary>
    public static List<string> FilesBelow(string directory)
    {
        var files = Directory.Exists(directory)
            ? Directory.GetFiles(directory, FilePrefix + "*" + FileSuffix, SearchOption.AllDirectories).ToList()
            : [];
        files.Sort(StringComparer.Ordinal);
        return files;
    }

    /// <summary>Log files of a directory in order (oldest first).</summary>
    public static List<string> Files(string directory)
    {
        var files = Directory.Exists(directory)
            ? Directory.GetFiles(directory, FilePrefix + "*" + FileSuffix).ToList()
            : [];
        files.Sort(StringComparer.Ordinal);
        return files;
    }

    /// <summary>
    /// The lines of a log file's bytes, numbered from 1, without their newline. The last one is not complete
    /// when the file does not end in a newline: what a crash mid-write leaves.
    /// </summary>
    public static IEnumerable<(int Number, ReadOnlyMemory<byte> Bytes, bool Complete)> Lines(byte[] bytes)
    {
        var number = 0;
        var start = 0;
        while (start < bytes.Length)
        {
            number++;
            var newline = Array.IndexOf(bytes, (byte)'\n', start);
            if (newline < 0)
            {
                yield return (number, bytes.AsMemory(start), false);
                yield break;
            }
            yield return (number, bytes.AsMemory(start, newline - start), true);
            start = newline + 1;
        }
    }

    public static string HashHex(ReadOnlySpan<byte> line)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(line, hash);
        return Convert.ToHexStringLower(hash);
    }

    /// <summary>The line's SHA-256 as lower-case hex UTF-8 into <paramref name="destination"/> (64 bytes), allocating nothing.</summary>
    public static void HashHex(ReadOnlySpan<byte> line, Span<byte> destination)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(line, hash);
        Convert.TryToHexStringLower(hash, destination, out _);
    }

    public static Utf8JsonWriter CreateWriter(IBufferWriter<byte> buffer) => new(buffer, WriterOptions);

    // Property names and fixed values encoded once: writing a record then only copies bytes for them.
    private static readonly JsonEncodedText KindName = JsonEncodedText.Encode("kind");
    private static readonly JsonEncodedText FlowKind = JsonEncodedText.Encode("flow");
    private static readonly JsonEncodedText TimeName = JsonEncodedText.Encode("time");
    private static readonly JsonEncodedText DurationName = JsonEncodedText.Encode("duration_ms");
    private static readonly JsonEncodedText DirectionName = JsonEncodedText.Encode("direction");
    private static readonly JsonEncodedText Inbound = JsonEncodedText.Encode("inbound");
    private static readonly JsonEncodedText Outbound = JsonEncodedText.Encode("outbound");
    private static readonly JsonEncodedText RequestIdName = JsonEncodedText.Encode("request_id");
    private static readonly JsonEncodedText SourceIdName = JsonEncodedText.Encode("source_id");
    private static readonly JsonEncodedText SourceAddrName = JsonEncodedText.Encode("source_addr");
    private static readonly JsonEncodedText DestIdName = JsonEncodedText.Encode("dest_id");
    private static readonly JsonEncodedText DestServiceName = JsonEncodedText.Encode("dest_service");
    private static readonly JsonEncodedText DestPortName = JsonEncodedText.Encode("dest_port");
    private static readonly JsonEncodedText ProtocolName = JsonEncodedText.Encode("protocol");
    private static readonly JsonEncodedText MethodName = JsonEncodedText.Encode("method");
    private static readonly JsonEncodedText PathName = JsonEncodedText.Encode("path");
    private static readonly JsonEncodedText StatusName = JsonEncodedText.Encode("status");
    private static readonly JsonEncodedText DecisionName = JsonEncodedText.Encode("decision");
    private static readonly JsonEncodedText AuditDecisionName = JsonEncodedText.Encode("audit_decision");
    private static readonly JsonEncodedText AuditPolicyName = JsonEncodedText.Encode("audit_policy");
    private static readonly JsonEncodedText AuditRuleName = JsonEncodedText.Encode("audit_rule");
    private static readonly JsonEncodedText PolicyName = JsonEncodedText.Encode("policy");
    private static readonly JsonEncodedText RuleName = JsonEncodedText.Encode("rule");
    private static readonly JsonEncodedText BytesInName = JsonEncodedText.Encode("bytes_in");
    private static readonly JsonEncodedText BytesOutName = JsonEncodedText.Encode("bytes_out");
    private static readonly JsonEncodedText TraceIdName = JsonEncodedText.Encode("trace_id");
    private static readonly JsonEncodedText TlsVersionName = JsonEncodedText.Encode("tls_version");
    private static readonly JsonEncodedText SeqName = JsonEncodedText.Encode("seq");
    private static readonly JsonEncodedText PrevName = JsonEncodedText.Encode("prev");

    public static void WriteFlow(Utf8JsonWriter json, in FlowRecord r, long seq, ReadOnlySpan<byte> prev)
    {
        json.WriteStartObject();
        json.WriteString(KindName, FlowKind);
        json.WriteString(TimeName, r.Time.UtcDateTime);
        json.WriteNumber(DurationName, Math.Round(r.DurationMs, 3));
        json.WriteString(DirectionName, r.Direction == FlowDirection.Inbound ? Inbound : Outbound);
        Optional(json, RequestIdName, r.RequestId);
        Optional(json, SourceIdName, r.SourceId);
        Optional(json, SourceAddrName, r.SourceAddr);
        Optional(json, DestIdName, r.DestId);
        Optional(json, DestServiceName, r.DestService);
        json.WriteNumber(DestPortName, r.DestPort);
        Optional(json, ProtocolName, r.Protocol);
        Optional(json, MethodName, r.Method);
        Optional(json, PathName, r.Path);
        json.WriteNumber(StatusName, r.Status);
        Optional(json, DecisionName, r.Decision);
        Optional(json, AuditDecisionName, r.AuditDecision);
        Optional(json, AuditPolicyName, r.AuditPolicy);
        Optional(json, AuditRuleName, r.AuditRule);
        Optional(json, PolicyName, r.Policy);
        Optional(json, RuleName, r.Rule);
        json.WriteNumber(BytesInName, r.BytesIn);
        json.WriteNumber(BytesOutName, r.BytesOut);
        if (r.TraceId is { } trace)
        {
            // A whole traceparent (00-<trace id>-<span id>-<flags>) is stored as it came; the id is its second field.
            json.WriteString(TraceIdName, trace.Length == 55 ? trace.AsSpan(3, 32) : trace.AsSpan());
        }
        Optional(json, TlsVersionName, r.TlsVersion);
        json.WriteNumber(SeqName, seq);
        json.WriteString(PrevName, prev);
        json.WriteEndObject();
    }

    /// <summary>The bytes a checkpoint (or start) signature covers: the chain up to it, by seq and prev hash.</summary>
    public static byte[] SignedPayload(string kind, long seq, string prev, string time, string workload) =>
        Encoding.UTF8.GetBytes($"meshguard-flowlog/v1\n{kind}\n{seq.ToString(CultureInfo.InvariantCulture)}\n{prev}\n{time}\n{workload}");

    private static void Optional(Utf8JsonWriter json, JsonEncodedText name, string? value)
    {
        if (value is not null)
        {
            json.WriteString(name, value);
        }
    }
}
