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

    public static string HashHex(ReadOnlySpan<byte> line)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(line, hash);
        return Convert.ToHexStringLower(hash);
    }

    public static Utf8JsonWriter CreateWriter(IBufferWriter<byte> buffer) => new(buffer, WriterOptions);

    public static void WriteFlow(Utf8JsonWriter json, in FlowRecord r, long seq, string prev)
    {
        json.WriteStartObject();
        json.WriteString("kind", "flow");
        json.WriteString("time", r.Time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", CultureInfo.InvariantCulture));
        json.WriteNumber("duration_ms", Math.Round(r.DurationMs, 3));
        json.WriteString("direction", r.Direction == FlowDirection.Inbound ? "inbound" : "outbound");
        Optional(json, "request_id", r.RequestId);
        Optional(json, "source_id", r.SourceId);
        Optional(json, "source_addr", r.SourceAddr);
        Optional(json, "dest_id", r.DestId);
        Optional(json, "dest_service", r.DestService);
        json.WriteNumber("dest_port", r.DestPort);
        Optional(json, "protocol", r.Protocol);
        Optional(json, "method", r.Method);
        Optional(json, "path", r.Path);
        json.WriteNumber("status", r.Status);
        Optional(json, "decision", r.Decision);
        Optional(json, "audit_decision", r.AuditDecision);
        Optional(json, "audit_policy", r.AuditPolicy);
        Optional(json, "audit_rule", r.AuditRule);
        Optional(json, "policy", r.Policy);
        Optional(json, "rule", r.Rule);
        json.WriteNumber("bytes_in", r.BytesIn);
        json.WriteNumber("bytes_out", r.BytesOut);
        Optional(json, "trace_id", r.TraceId);
        Optional(json, "tls_version", r.TlsVersion);
        json.WriteNumber("seq", seq);
        json.WriteString("prev", prev);
        json.WriteEndObject();
    }

    /// <summary>The bytes a checkpoint (or start) signature covers: the chain up to it, by seq and prev hash.</summary>
    public static byte[] SignedPayload(string kind, long seq, string prev, string time, string workload) =>
        Encoding.UTF8.GetBytes($"meshguard-flowlog/v1\n{kind}\n{seq.ToString(CultureInfo.InvariantCulture)}\n{prev}\n{time}\n{workload}");

    private static void Optional(Utf8JsonWriter json, string name, string? value)
    {
        if (value is not null)
        {
            json.WriteString(name, value);
        }
    }
}
