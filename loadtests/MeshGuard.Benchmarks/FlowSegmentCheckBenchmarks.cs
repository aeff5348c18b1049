using BenchmarkDotNet.Attributes;
using MeshGuard.FlowLog;
using MeshGuard.Tests.Common;

namespace MeshGuard.Benchmarks;

/// <summary>
/// The control plane's check of one uploaded segment as a sidecar cuts it: 1,000 flow records and the signed
/// checkpoint that closes them (every line's head read and hashed, the closing signature and its chain verified).
/// Divide by 1,001 for the cost per line; reading the lines' heads alone is the part the check's one pass costs.
/// </summary>
[MemoryDiagnoser]
public class FlowSegmentCheckBenchmarks
{
    private readonly TestCa _ca = new();
    private TempDirectory _directory = null!;
    private ReadOnlyMemory<byte> _segment;

    [GlobalSetup]
    public void Setup()
    {
        _directory = new TempDirectory();
        using (var writer = new FlowLogWriter(_directory.Path, new TestCheckpointSigner(_ca, TestFlowLog.Orders), TimeProvider.System, 10 * 1024 * 1024, 10))
        {
            writer.Open();
            TestFlowLog.Append(writer, 1000, checkpointEvery: 1000);
        }
        // The first segment after the start record: the 1,000 records and their checkpoint.
        _segment = TestFlowLog.Segments(_directory.Path, from: 2)[0].Lines;
    }

    [Benchmark(Description = "check a 1,000-record segment")]
    public int Check() => FlowSegmentCheck.Check(_segment, held: null, discontinuous: false, _ca.Bundle, TestFlowLog.Orders).Lines;

    [Benchmark(Description = "read the head of each of its 1,001 lines")]
    public long ReadHeads()
    {
        long sum = 0;
        foreach (var (_, line, _) in FlowLogFormat.Lines(_segment))
        {
            sum += FlowLineHead.TryRead(line.Span, out var head) ? head.Seq : -1;
        }
        return sum;
    }

    [GlobalCleanup]
    public void Cleanup() => _directory.Dispose();
}
