using System.Buffers;
using System.Globalization;
using System.Text.Json;

namespace MeshGuard.FlowLog;

/// <summary>
/// Appends records to the log files of one directory, keeping the hash chain across files and restarts.
/// Single-threaded by design: the sidecar's background writer is its only caller.
/// 1. On open, the last complete line of the newest file gives seq and prev; a new file starts with a
///    signed start record linking to it (a torn line a crash left stays where it is, for verify to report).
/// 2. Every line: seq + 1, prev = SHA-256 of the line before.
/// 3. Rotation by size into the next numbered file; the oldest beyond the retention count are deleted.
/// 4. Checkpoints (signed) on demand: the caller decides when (count or time), and on close.
/// </summary>
public sealed class FlowLogWriter : IDisposable
{
    private readonly string _directory;
    private readonly ICheckpointSigner _signer;
    private readonly TimeProvider _time;
    private readonly long _maxFileBytes;
    private readonly int _retainFiles;
    private readonly ArrayBufferWriter<byte> _line = new(2048);
    private readonly Utf8JsonWriter _json;
    private FileStream? _file;
    private long _fileBytes; // counted here: asking the stream for its length costs a system call per line
    private long _fileNumber;
    private long _seq;
    // The previous line's hash as hex UTF-8: kept in place, never as a string per line.
    private readonly byte[] _prev = System.Text.Encoding.ASCII.GetBytes(FlowLogFormat.GenesisHash);
    private readonly LineHasher _sha256 = new();

    public FlowLogWriter(string directory, ICheckpointSigner signer, TimeProvider time, long maxFileBytes = 10 * 1024 * 1024, int retainFiles = 10)
    {
        _directory = directory;
        _signer = signer;
        _time = time;
        _maxFileBytes = maxFileBytes;
        _retainFiles = Math.Max(1, retainFiles);
        _json = FlowLogFormat.CreateWriter(_line);
    }

    /// <summary>Called after each signed line (start, checkpoint) is written and flushed: the sidecar then has a segment to upload.</summary>
    public Action? SignedRecordWritten { get; set; }

    /// <summary>Records written since the last signed record.</summary>
    public long SinceCheckpoint { get; private set; }

    public DateTimeOffset LastCheckpoint { get; private set; }

    public long Seq => _seq;

    /// <summary>The SHA-256 (hex) of the last line written: the next record's <c>prev</c>.</summary>
    public string LastHash => System.Text.Encoding.ASCII.GetString(_prev);

    public string CurrentFile => _file?.Name ?? "";

    /// <summary>1. Opens a new file continuing the chain of what is on disk, and writes the signed start record.</summary>
    public void Open()
    {
        Directory.CreateDirectory(_directory);
        var files = FlowLogFormat.Files(_directory);
        if (files.Count > 0)
        {
            var last = files[^1];
            _fileNumber = FlowLogFormat.FileNumber(last);
            // The newest file may end in a torn line; the chain goes on from the last complete line of any file.
            for (var i = files.Count - 1; i >= 0; i--)
            {
                if (FlowLogFormat.LastCompleteLine(files[i]) is { } line)
                {
                    using var document = JsonDocument.Parse(line);
                    _seq = document.RootElement.GetProperty("seq").GetInt64();
                    HashIntoPrev(line);
                    break;
                }
            }
        }
        OpenNextFile();
        WriteSigned("start", count: null);
    }

    /// <summary>2.</summary>
    public void Append(in FlowRecord record)
    {
        _line.Clear();
        FlowLineEncoder.Encode(_line, record, _seq + 1, _prev);
        WriteLine();
        SinceCheckpoint++;
    }

    /// <summary>States that <paramref name="missing"/> records were lost (queue overflow) at this point.</summary>
    public void AppendGap(long missing)
    {
        _line.Clear();
        _json.Reset();
        _json.WriteStartObject();
        _json.WriteString("kind", "gap");
        _json.WriteString("time", _time.GetUtcNow().UtcDateTime);
        _json.WriteString("workload", _signer.WorkloadId);
        _json.WriteNumber("missing", missing);
        _json.WriteNumber("seq", _seq + 1);
        _json.WriteString("prev", _prev);
        _json.WriteEndObject();
        _json.Flush();
        WriteLine();
        SinceCheckpoint++;
    }

    /// <summary>4. A signed checkpoint covering everything before it; nothing to do if nothing was written since the last.</summary>
    public void Checkpoint()
    {
        if (SinceCheckpoint > 0)
        {
            WriteSigned("checkpoint", SinceCheckpoint);
        }
    }

    public void Flush() => _file?.Flush();

    private void WriteSigned(string kind, long? count)
    {
        var time = Now();
        var seq = _seq + 1;
        var prev = System.Text.Encoding.ASCII.GetString(_prev);
        var (signature, chain) = _signer.Sign(FlowLogFormat.SignedPayload(kind, seq, prev, time, _signer.WorkloadId));
        _line.Clear();
        _json.Reset();
        _json.WriteStartObject();
        _json.WriteString("kind", kind);
        _json.WriteString("time", time);
        _json.WriteString("workload", _signer.WorkloadId);
        if (count is { } c)
        {
            _json.WriteNumber("count", c);
        }
        _json.WriteNumber("seq", seq);
        _json.WriteString("prev", prev);
        _json.WriteString("sig", Convert.ToBase64String(signature));
        _json.WriteString("signer_chain", chain);
        _json.WriteEndObject();
        _json.Flush();
        WriteLine();
        SinceCheckpoint = 0;
        LastCheckpoint = _time.GetUtcNow();
        _file!.Flush();
        SignedRecordWritten?.Invoke();
    }

    private void WriteLine()
    {
        var line = _line.WrittenSpan;
        if (_fileBytes > 0 && _fileBytes + line.Length + 1 > _maxFileBytes)
        {
            OpenNextFile(); // 3.
        }
        _file!.Write(line);
        _file.WriteByte((byte)'\n');
        _fileBytes += line.Length + 1;
        _seq++;
        HashIntoPrev(line);
    }

    private void HashIntoPrev(ReadOnlySpan<byte> line)
    {
        _sha256.HashHex(line, _prev);
    }

    private void OpenNextFile()
    {
        _file?.Flush();
        _file?.Dispose();
        _fileNumber++;
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.Read, BufferSize = 64 * 1024 };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        _file = new FileStream(Path.Combine(_directory, FlowLogFormat.FileName(_fileNumber)), options);
        _fileBytes = 0;
        var files = FlowLogFormat.Files(_directory);
        for (var i = 0; i < files.Count - _retainFiles; i++)
        {
            File.Delete(files[i]);
        }
    }

    // Signed records carry their time as text, since the signature covers it.
    private string Now() => _time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", CultureInfo.InvariantCulture);

    /// <summary>
    /// Lets go of the file after a write failed (a full disk): nothing more is written, not even a checkpoint.
    /// A line the failure cut short stays at the file's end, where verify reports it; the next writer's
    /// Open chains on from the last complete line.
    /// </summary>
    public void Abandon()
    {
        var file = _file;
        _file = null;
        try
        {
            file?.Dispose();
        }
        catch (IOException)
        {
            // Dispose flushes what is buffered, which fails the same way; those records are already counted as lost.
        }
    }

    /// <summary>Writes a final checkpoint and closes the file.</summary>
    public void Dispose()
    {
        if (_file is not null)
        {
            Checkpoint();
            _file.Flush(flushToDisk: true);
            _file.Dispose();
            _file = null;
        }
        _json.Dispose();
        _sha256.Dispose();
    }
}
