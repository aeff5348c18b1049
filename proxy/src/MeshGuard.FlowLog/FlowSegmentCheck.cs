using System.Text.Json;
using MeshGuard.Spiffe;

namespace MeshGuard.FlowLog;

/// <summary>
/// The control plane's check of an uploaded segment before it keeps a byte of it: whole lines, each with the
/// seq after the one before and the hash of the one before as its prev, the first one continuing the copy
/// already held (unless the sidecar says its log no longer holds what follows), and the last one a signed
/// record whose signer chains to the bundle and is the caller. That last signature covers every line before
/// it through the chain, so one verification per segment suffices. Every record must be the caller's own: a flow
/// record in which the caller is not the local party (the callee inbound, the caller outbound) or a signed record
/// of another workload is refused, so no workload can file records in another's name.
/// </summary>
public static class FlowSegmentCheck
{
    /// <param name="held">The seq and hash of the last line already held, or null when nothing is.</param>
    /// <param name="lineHashes">Given, receives each line's SHA-256 (32 bytes a line, in order): a store that keeps them needs no second pass.</param>
    public static FlowSegmentVerdict Check(ReadOnlyMemory<byte> lines, (long Seq, string Hash)? held, bool discontinuous, TrustBundle bundle, string caller,
        System.Buffers.IBufferWriter<byte>? lineHashes = null)
    {
        if (lines.Length == 0 || lines.Span[^1] != (byte)'\n')
        {
            return FlowSegmentVerdict.Refuse("a segment is whole lines, each ending in a newline");
        }
        var expectedSeq = held is { } h && !discontinuous ? h.Seq + 1 : (long?)null;
        // The hex hash each line's prev must equal, as ASCII: compared in place, never a string per line.
        Span<byte> expectedPrev = stackalloc byte[FlowLogFormat.HashHexLength];
        Span<byte> hash = stackalloc byte[32];
        var checkPrev = held is { } p && !discontinuous && System.Text.Encoding.ASCII.GetBytes(p.Hash, expectedPrev) == FlowLogFormat.HashHexLength;
        var count = 0;
        Span<byte> callerBytes = stackalloc byte[System.Text.Encoding.UTF8.GetMaxByteCount(caller.Length)];
        callerBytes = callerBytes[..System.Text.Encoding.UTF8.GetBytes(caller, callerBytes)];
        using var sha256 = new LineHasher();
        FlowLineHead last = default;
        var lastLine = ReadOnlyMemory<byte>.Empty;
        foreach (var (number, bytes, _) in FlowLogFormat.Lines(lines))
        {
            var line = bytes.Span;
            if (!FlowLineHead.TryRead(line, out var head))
            {
                return FlowSegmentVerdict.Refuse($"line {number} of the segment is not a flow-log record");
            }
            if (expectedSeq is { } seq && head.Seq != seq)
            {
                return FlowSegmentVerdict.Refuse($"line {number} has seq {head.Seq}, expected {seq}");
            }
            if (checkPrev && !head.Prev(line).SequenceEqual(expectedPrev))
            {
                return FlowSegmentVerdict.Refuse($"line {number} (seq {head.Seq}) does not chain to the line before it");
            }
            if ((head.IsFlow || head.IsSignedRecord) && !head.LocalParty(line).SequenceEqual(callerBytes))
            {
                return FlowSegmentVerdict.Refuse($"line {number} (seq {head.Seq}) is not a record of the caller {caller}: it is not the local party");
            }
            sha256.Hash(line, hash);
            if (lineHashes is not null)
            {
                System.Buffers.BuffersExtensions.Write(lineHashes, hash);
            }
            LowerHex.Write(hash, expectedPrev);
            checkPrev = true;
            expectedSeq = head.Seq + 1;
            last = head;
            lastLine = bytes;
            count++;
        }
        if (!last.IsSignedRecord)
        {
            return FlowSegmentVerdict.Refuse("a segment must end with a signed record (start or checkpoint)");
        }
        using var document = JsonDocument.Parse(lastLine);
        var check = FlowLogVerifier.VerifySigned(document.RootElement, bundle);
        if (check.Problem is not null)
        {
            return FlowSegmentVerdict.Refuse($"the closing record (seq {last.Seq}): {check.Detail}");
        }
        if (check.Signer != caller)
        {
            return FlowSegmentVerdict.Refuse($"the closing record is signed by {check.Signer}, not the caller {caller}");
        }
        return new FlowSegmentVerdict(null, count, last.Seq, System.Text.Encoding.ASCII.GetString(expectedPrev), lastLine.ToArray());
    }
}

/// <summary>Why a segment was refused, or what it ends with.</summary>
public sealed record FlowSegmentVerdict(string? Refusal, int Lines, long LastSeq, string LastHash, byte[] LastLine)
{
    public static FlowSegmentVerdict Refuse(string reason) => new(reason, 0, 0, "", []);
}
