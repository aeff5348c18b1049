using System.Security.Cryptography.X509Certificates;
using MeshGuard.FlowLog;
using MeshGuard.Proxy.FlowLog;
using MeshGuard.Proxy.Identity;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshGuard.Proxy.Tests.FlowLog;

/// <summary>The background writer behind the bounded queue: nothing blocks, and every loss is stated.</summary>
public sealed class FlowLogServiceTests : IDisposable
{
    private readonly TestCa _ca = new();
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private (FlowLogSink Sink, FlowLogService Service) Create(int queue, TimeProvider? time = null)
    {
        var identity = new WorkloadIdentity(TimeProvider.System);
        identity.Publish(_ca.IssueSvid("spiffe://mesh.local/ns/shop/sa/orders"), _ca.Bundle, key: null);
        var sink = new FlowLogSink(new FlowLogSettings(_dir.Path, queue, 10 * 1024 * 1024, 10, KeepQuery: false));
        return (sink, new FlowLogService(sink, new SvidCheckpointSigner(identity), time ?? TimeProvider.System, NullLogger<FlowLogService>.Instance));
    }

    private int SignedRecords() => FlowLogReader.Records(_dir.Path).Count(r => r.Text("kind") is "checkpoint" or "start");

    // As the inbound side records a call: this workload (orders) is the callee, the local party.
    private static FlowRecord Flow(int i) => new() { Time = DateTimeOffset.UtcNow, Direction = FlowDirection.Inbound, DestId = "spiffe://mesh.local/ns/shop/sa/orders", Method = "GET", Path = $"/r/{i}", Status = 200, Decision = "allow" };

    [Fact]
    public async Task AFullQueueNeverBlocksAndTheLossIsCountedAndStatedInAGapRecord()
    {
        var (sink, service) = Create(queue: 5);
        using var blocked = new SemaphoreSlim(0);
        service.Gate = blocked; // the disk is stuck
        await service.StartAsync(CancellationToken.None);

        sink.Add(Flow(0));
        await Task.Delay(200); // the writer wakes for the first record and waits at the gate
        for (var i = 1; i <= 30; i++)
        {
            sink.Add(Flow(i)); // returns at once even though nothing is written
        }
        var dropped = sink.Dropped;
        Assert.InRange(dropped, 25, 26);

        blocked.Release();
        await service.StopAsync(CancellationToken.None);

        var report = FlowLogVerifier.Verify(_dir.Path, _ca.Bundle);
        Assert.Equal(31 - dropped, report.Flows);
        Assert.Equal(dropped, report.GapsDeclared);
        Assert.Equal(report.Flows, sink.Written);
        var gap = Assert.Single(report.Problems);
        Assert.Equal(FlowProblemKind.GapDeclared, gap.Kind);
        Assert.Contains($"lost {dropped} record(s)", gap.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryRecordIsWrittenWhenTheQueueKeepsUpAndStopSignsAFinalCheckpoint()
    {
        var (sink, service) = Create(queue: 10_000);
        await service.StartAsync(CancellationToken.None);
        for (var i = 0; i < 2500; i++)
        {
            sink.Add(Flow(i));
        }
        await service.StopAsync(CancellationToken.None);

        var report = FlowLogVerifier.Verify(_dir.Path, _ca.Bundle);
        Assert.True(report.IsOk, string.Join("\n", report.Problems));
        Assert.Equal(2500, report.Flows);
        Assert.Equal(0, sink.Dropped);
        var last = FlowLogReader.Records(_dir.Path).Last();
        Assert.Equal("checkpoint", last.Text("kind"));
        // start + at least one every 1,000 records + the final one
        Assert.True(report.Checkpoints >= 4, $"{report.Checkpoints} signed records");
    }

    [Fact]
    public async Task AWriterGoneIdleSignsItsLastRecordsWithinFiveSecondsAndWritesTheNextRecordWhenItComes()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var (sink, service) = Create(queue: 100, clock);
        await service.StartAsync(CancellationToken.None);
        Assert.Equal(1, SignedRecords()); // the start record

        // One record, then nothing: the writer parks after its first empty tick, and only its checkpoint clock
        // (a record waits to be signed) wakes it.
        sink.Add(Flow(1));
        // Steps of fake time until the writer has done it, however slowly a busy machine runs its continuations.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (SignedRecords() < 2 && DateTime.UtcNow < deadline)
        {
            clock.Advance(TimeSpan.FromMilliseconds(100));
            await Task.Delay(10);
        }
        Assert.Equal(1, sink.Written);
        Assert.Equal(2, SignedRecords());

        // Nothing unsigned any more: the writer waits for a record alone, however long the quiet lasts.
        clock.Advance(TimeSpan.FromMinutes(10));
        await Task.Delay(100);
        Assert.Equal(2, SignedRecords());

        // A record queued while the writer is parked wakes it; the next tick writes it.
        sink.Add(Flow(2));
        deadline = DateTime.UtcNow.AddSeconds(30);
        while (sink.Written < 2 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
            clock.Advance(TimeSpan.FromMilliseconds(20));
        }
        Assert.Equal(2, sink.Written);
        await service.StopAsync(CancellationToken.None);
        var report = FlowLogVerifier.Verify(_dir.Path, _ca.Bundle);
        Assert.True(report.IsOk, string.Join("\n", report.Problems));
        Assert.Equal(2, report.Flows);
    }
}
