using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using MeshGuard.Contracts.V1;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A workload with an SVID of its own calls the control plane's flow-log witness directly, as its sidecar would, but
/// with uploads made to hurt: several at once, more than 16 MiB, parts that disagree. The control plane's memory stays
/// bounded and nothing such a call sends is kept.
/// </summary>
[Collection(nameof(MeshCollection))]
[Trait("Subject", "ControlPlane")]
public sealed class WitnessUploadTests(MeshFixture mesh)
{
    /// <summary>Bytes that are not a flow log: the witness refuses them once it has them all.</summary>
    private static readonly ByteString Junk = ByteString.CopyFrom(new byte[FlowSegmentUpload.PartBytes]);

    private sealed class Caller(GrpcChannel channel) : IDisposable
    {
        public Witness.WitnessClient Witness { get; } = new(channel);

        public void Dispose() => channel.Dispose();
    }

    private Caller As(string workload) => new(mesh.ControlPlaneChannel(mesh.RealCa.IssueLeaf($"spiffe://mesh.local/ns/shop/sa/{workload}")));

    /// <summary>Where the control plane's copy of the caller's log ends: what an upload with no parts is answered.</summary>
    private static async Task<long> HeldSeqAsync(Caller caller)
    {
        using var call = caller.Witness.UploadParts();
        await call.RequestStream.CompleteAsync();
        return (await call.ResponseAsync).Seq;
    }

    /// <summary>An upload whose first part is on its way; it holds its place until it is completed.</summary>
    private static async Task<AsyncClientStreamingCall<FlowSegment, WitnessAck>> StartUploadAsync(Caller caller)
    {
        var call = caller.Witness.UploadParts();
        await call.RequestStream.WriteAsync(new FlowSegment { Lines = Junk });
        return call;
    }

    private static async Task<RpcException> RefusalOfAsync(AsyncClientStreamingCall<FlowSegment, WitnessAck> call)
    {
        try
        {
            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
            // Refused before the client finished sending: the answer below says why.
        }
        return await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
    }

    [Fact]
    public async Task AWorkloadHasOneUploadInFlightASecondIsRefusedAtOnceAndTheJunkOfTheFirstIsNotKept()
    {
        using var first = As("mallory-one");
        using var second = As("mallory-one");
        using var upload = await StartUploadAsync(first);
        // The first call's place is taken when its headers reach the control plane, a moment after the write.
        await Task.Delay(TimeSpan.FromSeconds(1));
        RpcException? refused = null;
        Assert.True(await Eventually.TrueAsync(async () =>
        {
            try
            {
                await HeldSeqAsync(second);
                return false;
            }
            catch (RpcException e)
            {
                refused = e;
                return true;
            }
        }, TimeSpan.FromSeconds(10)), "a second upload of the same workload was taken while its first was in flight");
        Assert.Equal(StatusCode.ResourceExhausted, refused!.StatusCode);
        Assert.Contains("already has a flow-log segment upload in flight", refused.Status.Detail, StringComparison.Ordinal);

        // The first was taken, judged on its whole content, and refused: junk chains on to nothing.
        Assert.Equal(StatusCode.FailedPrecondition, (await RefusalOfAsync(upload)).StatusCode);
        Assert.Equal(0L, await HeldSeqAsync(second));
    }

    [Fact]
    public async Task AnUploadOfMoreThanSixteenMiBOrWithALaterPartClaimingDiscontinuityIsRefusedAndNothingIsKept()
    {
        using var mallory = As("mallory-two");
        using (var oversized = mallory.Witness.UploadParts())
        {
            try
            {
                // 257 parts of the sidecar's size: one more than 16 MiB holds.
                for (var part = 0; part < 257; part++)
                {
                    await oversized.RequestStream.WriteAsync(new FlowSegment { Lines = Junk });
                }
            }
            catch (RpcException)
            {
                // The control plane ended the call as soon as the joined parts passed the bound.
            }
            var refusal = await RefusalOfAsync(oversized);
            Assert.Equal(StatusCode.ResourceExhausted, refusal.StatusCode);
            Assert.Contains("at most 16777216 bytes", refusal.Status.Detail, StringComparison.Ordinal);
        }

        using (var disagreeing = await StartUploadAsync(mallory))
        {
            await disagreeing.RequestStream.WriteAsync(new FlowSegment { Lines = Junk, Discontinuous = true });
            var refusal = await RefusalOfAsync(disagreeing);
            Assert.Equal(StatusCode.InvalidArgument, refusal.StatusCode);
            Assert.Contains("only a segment's first part may say it is discontinuous", refusal.Status.Detail, StringComparison.Ordinal);
        }
        Assert.Equal(0L, await HeldSeqAsync(mallory));
    }

    [Fact]
    public async Task AtMostFourUploadsAreTakenAtOnceAndAFifthWorkloadWaitsUntilOneEnds()
    {
        var callers = Enumerable.Range(0, 5).Select(i => As($"mallory-many-{i}")).ToList();
        try
        {
            var held = new List<AsyncClientStreamingCall<FlowSegment, WitnessAck>>();
            for (var i = 0; i < 4; i++)
            {
                held.Add(await StartUploadAsync(callers[i]));
            }
            await Task.Delay(TimeSpan.FromSeconds(1));
            var fifth = HeldSeqAsync(callers[4]);
            // While four uploads are taken, the fifth is not answered, though it sends nothing at all.
            Assert.NotSame(fifth, await Task.WhenAny(fifth, Task.Delay(TimeSpan.FromSeconds(2))));

            // One ends (judged on its whole content and refused: junk): the fifth is taken and answered.
            Assert.Equal(StatusCode.FailedPrecondition, (await RefusalOfAsync(held[0])).StatusCode);
            Assert.Equal(0L, await fifth.WaitAsync(TimeSpan.FromSeconds(15)));
            foreach (var call in held)
            {
                if (call != held[0])
                {
                    Assert.Equal(StatusCode.FailedPrecondition, (await RefusalOfAsync(call)).StatusCode);
                }
                call.Dispose();
            }
        }
        finally
        {
            callers.ForEach(c => c.Dispose());
        }
    }
}
