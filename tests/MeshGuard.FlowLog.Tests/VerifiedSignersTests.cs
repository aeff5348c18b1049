using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MeshGuard.Tests.Common;

namespace MeshGuard.FlowLog.Tests;

/// <summary>
/// A signer chain that verified once is not decoded and built again for the next record carrying it; what a record
/// proves stays what a full check says: its own signature, its signer against its workload, its time against the
/// certificates, the chain against the bundle in hand.
/// </summary>
public sealed class VerifiedSignersTests
{
    private const string Orders = TestFlowLog.Orders;
    private const string Frontend = TestFlowLog.Frontend;
    private static readonly TestCa Ca = new();

    /// <summary>A checkpoint of <paramref name="workload"/> at <paramref name="time"/>, signed over <paramref name="signedSeq"/> and stating <paramref name="seq"/>.</summary>
    private static (JsonElement Record, string Chain) Checkpoint(TestCheckpointSigner signer, string workload, DateTimeOffset time, long seq = 5, long? signedSeq = null)
    {
        var at = time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", CultureInfo.InvariantCulture);
        var (signature, chain) = signer.Sign(FlowLogFormat.SignedPayload("checkpoint", signedSeq ?? seq, FlowLogFormat.GenesisHash, at, workload));
        var record = new JsonObject
        {
            ["kind"] = "checkpoint",
            ["time"] = at,
            ["workload"] = workload,
            ["count"] = 4,
            ["seq"] = seq,
            ["prev"] = FlowLogFormat.GenesisHash,
            ["sig"] = Convert.ToBase64String(signature),
            ["signer_chain"] = chain,
        };
        return (JsonDocument.Parse(record.ToJsonString()).RootElement, chain);
    }

    [Fact]
    public void AChainThatVerifiedIsKeptAndEachRecordsOwnSignatureAndWorkloadAreStillChecked()
    {
        var signer = new TestCheckpointSigner(Ca, Orders);
        var now = DateTimeOffset.UtcNow;
        var (first, chain) = Checkpoint(signer, Orders, now);
        Assert.Null(VerifiedSigners.Find(Ca.Bundle, chain, now));

        Assert.Equal(new SignedRecordCheck(Orders, null, null), FlowLogVerifier.VerifySigned(first, Ca.Bundle));
        Assert.NotNull(VerifiedSigners.Find(Ca.Bundle, chain, now));

        var changedSeq = Checkpoint(signer, Orders, now, seq: 6, signedSeq: 5).Record;
        Assert.Equal("signature does not verify", FlowLogVerifier.VerifySigned(changedSeq, Ca.Bundle).Detail);
        var otherWorkload = Checkpoint(signer, Frontend, now).Record;
        Assert.Equal(new SignedRecordCheck(null, FlowProblemKind.SignerMismatch, $"signed by {Orders} for workload {Frontend}"),
            FlowLogVerifier.VerifySigned(otherWorkload, Ca.Bundle));
        Assert.Equal(new SignedRecordCheck(Orders, null, null), FlowLogVerifier.VerifySigned(Checkpoint(signer, Orders, now.AddMinutes(10)).Record, Ca.Bundle));
    }

    [Fact]
    public void AKeptChainIsCheckedInFullForATimePastItsCertificatesAndAgainstAnotherBundle()
    {
        var signer = new TestCheckpointSigner(Ca, Orders);
        var now = DateTimeOffset.UtcNow;
        var (record, chain) = Checkpoint(signer, Orders, now);
        Assert.Null(FlowLogVerifier.VerifySigned(record, Ca.Bundle).Problem);
        Assert.NotNull(VerifiedSigners.Find(Ca.Bundle, chain, now));

        // The leaf is valid for an hour: a record claiming a time after it is refused though its chain was kept.
        var late = Checkpoint(signer, Orders, now.AddHours(2)).Record;
        Assert.Equal(new SignedRecordCheck(null, FlowProblemKind.SignerNotInBundle, "certificate expired or not yet valid"),
            FlowLogVerifier.VerifySigned(late, Ca.Bundle));
        Assert.Equal(new SignedRecordCheck(null, FlowProblemKind.SignerNotInBundle, "certificate does not chain to the trust bundle"),
            FlowLogVerifier.VerifySigned(record, new TestCa().Bundle));
    }
}
