using Google.Protobuf;

namespace MeshGuard.Contracts.V1;

/// <summary>
/// A flow-log segment sent to the control plane in parts (<c>Witness.UploadParts</c>), which it joins and checks as
/// one segment. Sent whole, a segment of up to 1 MiB went into a message buffer the gRPC client rents from the shared
/// array pool; returned on whichever thread finished the call, such buffers stayed cached on each of those threads:
/// some 9 MiB of large-object heap per sidecar under load (measured with the bench). A part's buffer is 64 KiB.
/// </summary>
public static class FlowSegmentUpload
{
    /// <summary>
    /// The lines in one part: with gRPC's 5-byte message header and the message's field headers, a part fits a
    /// 64 KiB buffer, below the 85,000 bytes from which an array goes to the large-object heap.
    /// </summary>
    public const int PartBytes = 64 * 1024 - 16;

    /// <summary>
    /// Sends <paramref name="lines"/> (whole lines ending in a signed record). They are wrapped, not copied: the
    /// caller leaves them untouched until this returns.
    /// </summary>
    public static async Task<WitnessAck> UploadInPartsAsync(this Witness.WitnessClient witness, ReadOnlyMemory<byte> lines, bool discontinuous,
        DateTime? deadline, CancellationToken cancellation)
    {
        using var call = witness.UploadParts(deadline: deadline, cancellationToken: cancellation);
        var first = true;
        while (!lines.IsEmpty)
        {
            var part = lines[..Math.Min(lines.Length, PartBytes)];
            await call.RequestStream.WriteAsync(new FlowSegment { Lines = UnsafeByteOperations.UnsafeWrap(part), Discontinuous = first && discontinuous }, cancellation);
            lines = lines[part.Length..];
            first = false;
        }
        await call.RequestStream.CompleteAsync();
        return await call.ResponseAsync;
    }
}
