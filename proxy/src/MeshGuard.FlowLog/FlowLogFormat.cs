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

    /// <summary>The number in a log file's name (flows-000042.jsonl: 42).</summary>
    public static long FileNumber(string file) =>
        long.Parse(Path.GetFileName(file).AsSpan(FilePrefix.Length, 6), CultureInfo.InvariantCulture);

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
    public static IEnumerable<(int Number, ReadOnlyMemory<byte> Bytes, bool Complete)> Lines(ReadOnlyMemory<byte> bytes)
    {
        var number = 0;
        var start = 0;
        while (start < bytes.Length)
        {
            number++;
            var newline = bytes.Span[start..].IndexOf((byte)'\n');
            if (newline < 0)
            {
                yield return (number, bytes[start..], false);
                yield break;
            }
            yield return (number, bytes.Slice(start, newline), true);
            start += newline + 1;
        }
    }

    public static string HashHex(ReadOnlySpan<byte> line)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(line, hash);
        return Convert.ToHexStringLower(hash);
    }

    public static Utf8JsonWriter CreateWriter(IBufferWriter<byte> buffer) => new(buffer, WriterOptions);

    /// <summary>The bytes a checkpoint (or start) signature covers: the chain up to it, by seq and prev hash.</summary>
    public static byte[] SignedPayload(string kind, long seq, string prev, string time, string workload) =>
        Encoding.UTF8.GetBytes($"meshguard-flowlog/v1\n{kind}\n{seq.ToString(CultureInfo.InvariantCulture)}\n{prev}\n{time}\n{workload}");

    /// <summary>The last line that ends with a newline and parses as JSON, or null.</summary>
    public static byte[]? LastCompleteLine(string file)
    {
        var bytes = File.ReadAllBytes(file);
        var end = bytes.AsSpan().LastIndexOf((byte)'\n');
        while (end >= 0)
        {
            var start = bytes.AsSpan(0, end).LastIndexOf((byte)'\n') + 1;
            var line = bytes.AsSpan(start, end - start).ToArray();
            try
            {
                using var _ = JsonDocument.Parse(line);
                return line;
            }
            catch (JsonException)
            {
                end = start - 1;
            }
        }
        return null;
    }
}
