namespace MeshGuard.FlowLog;

/// <summary>
/// Reads a flow log directory forward from a seq, in segments that end at a signed record, for upload:
/// a segment is whole lines, contiguous, and its last line's signature covers all of it through the hash
/// chain. The position moves only when the caller says the segment arrived (<see cref="Advance"/>).
/// Follows the writer across files; a torn line a crash left at the end of an older file is passed over,
/// since the writer chained on from the complete line before it.
/// </summary>
public sealed class FlowLogTail(string directory)
{
    private static ReadOnlySpan<byte> SignedCheckpoint => "{\"kind\":\"checkpoint\""u8;
    private static ReadOnlySpan<byte> SignedStart => "{\"kind\":\"start\""u8;

    private string? _file;
    private long _offset;
    private byte[] _buffer = new byte[64 * 1024];

    /// <summary>The seq the next segment should start at.</summary>
    public long NextSeq { get; private set; } = 1;

    /// <summary>
    /// True when the log no longer holds <see cref="NextSeq"/> (deleted by retention, or a log started anew):
    /// the next segment starts later, and says so.
    /// </summary>
    public bool Discontinuous { get; private set; }

    /// <summary>
    /// Positions at the line with <paramref name="nextSeq"/>, or at the end when the log ends just before it.
    /// <paramref name="discontinuous"/>: the line there does not chain on to what the receiver holds, so the
    /// next segment says it starts anew.
    /// </summary>
    public void Seek(long nextSeq, bool discontinuous = false)
    {
        NextSeq = nextSeq;
        Discontinuous = discontinuous;
        _file = null;
        _offset = 0;
        var files = FlowLogFormat.Files(directory);
        if (files.Count == 0)
        {
            return;
        }
        for (var i = files.Count - 1; i >= 0; i--)
        {
            long? first = null;
            long last = -1;
            var start = 0;
            var end = 0;
            foreach (var (_, line, complete) in FlowLogFormat.Lines(ReadAll(files[i])))
            {
                var lineStart = start;
                start += line.Length + 1;
                if (!complete || !FlowLineHead.TryRead(line.Span, out var head))
                {
                    continue;
                }
                first ??= head.Seq;
                if (head.Seq == nextSeq)
                {
                    (_file, _offset) = (files[i], lineStart);
                    return;
                }
                last = head.Seq;
                end = start;
            }
            if (first is { } f && f <= nextSeq)
            {
                if (last == nextSeq - 1)
                {
                    (_file, _offset) = (files[i], end);
                    return;
                }
                break;
            }
        }
        // What was asked for is gone (or never was): go on from the oldest line there is.
        (_file, _offset) = (files[0], 0);
        Discontinuous = true;
    }

    /// <summary>
    /// The lines from the position up to the last signed record within <paramref name="maxBytes"/> (or, when
    /// none ends within it, up to the first one within <paramref name="hardMaxBytes"/>), or null when there is
    /// none yet. The segment's lines live in this reader's one buffer, reused: they are valid until the next Read.
    /// </summary>
    public FlowLogSegment? Read(int maxBytes, int hardMaxBytes = 0)
    {
        hardMaxBytes = Math.Max(maxBytes, hardMaxBytes);
        if (_file is null || !File.Exists(_file))
        {
            // Not yet there, or retention deleted the file under us: find the place again.
            Seek(NextSeq);
            if (_file is null)
            {
                return null;
            }
        }
        var used = 0;
        var file = _file;
        var offset = _offset;
        long firstSeq = -1;
        (int Length, string File, long Offset, long Seq)? signed = null;
        // Up to the budget; while no signed record ends within what was read, one more budget's worth, up to the
        // hard limit. Reading the hard limit at once would make every segment of a backlog as long as that and
        // grow this buffer (and the sender's message buffers) to it for good.
        var limit = maxBytes;
        bool ReadFurther()
        {
            if (signed is not null || limit >= hardMaxBytes)
            {
                return false;
            }
            limit = (int)Math.Min(hardMaxBytes, (long)limit + maxBytes);
            return true;
        }
        while (used < limit || ReadFurther())
        {
            var (read, reachedEnd) = ReadInto(file, offset, used, limit - used);
            var chunk = _buffer.AsSpan(used, read);
            var consumed = 0;
            while (chunk[consumed..].IndexOf((byte)'\n') is var newline and >= 0)
            {
                var line = chunk.Slice(consumed, newline);
                var end = consumed + newline + 1;
                // Only the first line and the signed ones are parsed: the writer puts the kind first, so a signed
                // record is told by its first bytes, and the flow lines between (nearly all) are passed unread.
                // A line that does not parse goes as it is: the control plane refuses it with the reason, rather
                // than this reader hiding a changed line.
                if (firstSeq < 0 || line.StartsWith(SignedCheckpoint) || line.StartsWith(SignedStart))
                {
                    var head = FlowLineHead.TryRead(line, out var h) ? h : new FlowLineHead(-1, false, 0, 0);
                    if (firstSeq < 0)
                    {
                        firstSeq = head.Seq;
                    }
                    if (head.IsSignedRecord)
                    {
                        signed = (used + end, file, offset + end, head.Seq);
                    }
                }
                consumed = end;
            }
            // An incomplete last line is read again next time, whole.
            used += consumed;
            offset += consumed;
            if (!reachedEnd && consumed > 0)
            {
                continue; // more of this file within the budget
            }
            if (!reachedEnd)
            {
                if (ReadFurther())
                {
                    continue;
                }
                break; // one line longer than what is left of the budget
            }
            if (consumed > 0)
            {
                continue; // the writer may have added more meanwhile
            }
            // Nothing more here. If the writer moved on to a newer file, whatever follows the last complete
            // line here is torn and stays behind.
            if (NextFile(file) is not { } next)
            {
                break;
            }
            (file, offset) = (next, 0);
        }
        if (signed is not { } s)
        {
            return null;
        }
        return new FlowLogSegment(_buffer.AsMemory(0, s.Length), firstSeq, s.Seq, Discontinuous, s.File, s.Offset);
    }

    /// <summary>The segment arrived: the next one starts after it.</summary>
    public void Advance(FlowLogSegment segment)
    {
        (_file, _offset) = (segment.EndFile, segment.EndOffset);
        NextSeq = segment.LastSeq + 1;
        Discontinuous = false;
    }

    private string? NextFile(string file)
    {
        foreach (var candidate in FlowLogFormat.Files(directory))
        {
            if (string.CompareOrdinal(candidate, file) > 0)
            {
                return candidate;
            }
        }
        return null;
    }

    /// <summary>
    /// Up to <paramref name="maxBytes"/> of the file from <paramref name="offset"/> into the buffer at
    /// <paramref name="at"/> (grown as needed, never shrunk: a steady state allocates nothing); how many, and
    /// whether that reached the file's end.
    /// </summary>
    private (int Read, bool ReachedEnd) ReadInto(string file, long offset, int at, int maxBytes)
    {
        try
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
            var available = Math.Max(0, stream.Length - offset);
            var count = (int)Math.Min(available, maxBytes);
            if (_buffer.Length < at + count)
            {
                Array.Resize(ref _buffer, (int)Math.Min(Array.MaxLength, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(at + count))));
            }
            stream.Position = offset;
            stream.ReadExactly(_buffer, at, count);
            return (count, count == available);
        }
        catch (FileNotFoundException)
        {
            return (0, true);
        }
    }

    /// <summary>A whole file, or nothing when retention deleted it meanwhile.</summary>
    private static byte[] ReadAll(string file)
    {
        try
        {
            return File.ReadAllBytes(file);
        }
        catch (FileNotFoundException)
        {
            return [];
        }
    }
}

/// <summary>Whole lines of a flow log, contiguous, ending at a signed record; where the reader stood after them.</summary>
public sealed record FlowLogSegment(ReadOnlyMemory<byte> Lines, long FirstSeq, long LastSeq, bool Discontinuous, string EndFile, long EndOffset);
