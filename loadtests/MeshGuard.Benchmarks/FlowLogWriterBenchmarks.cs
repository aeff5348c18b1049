using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using MeshGuard.FlowLog;

namespace MeshGuard.Benchmarks;

/// <summary>Cost of appending one flow record (JSON, hash chain, buffered write) on the background writer.</summary>
[MemoryDiagnoser]
public class FlowLogWriterBenchmarks
{
    private string _directory = "";
    private FlowLogWriter _writer = null!;
    private FlowRecord _record;

    private sealed class Signer : ICheckpointSigner
    {
        private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

        public string WorkloadId => "spiffe://mesh.local/ns/shop/sa/orders";

        public (byte[] Signature, string ChainPem) Sign(byte[] payload) => (_key.SignData(payload, HashAlgorithmName.SHA256), "");
    }

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "meshguard-bench-" + Guid.NewGuid().ToString("N"));
        _writer = new FlowLogWriter(_directory, new Signer(), TimeProvider.System, maxFileBytes: long.MaxValue, retainFiles: 1);
        _writer.Open();
        _record = new FlowRecord
        {
            Time = DateTimeOffset.UtcNow,
            DurationMs = 0.734,
            Direction = FlowDirection.Inbound,
            RequestId = "3f2a9c1e5b7d4e60a1b2c3d4e5f60718",
            SourceId = "spiffe://mesh.local/ns/shop/sa/frontend",
            SourceAddr = "127.0.0.1:53412",
            DestId = "spiffe://mesh.local/ns/shop/sa/orders",
            DestService = "orders",
            DestPort = 8080,
            Protocol = "HTTP/2",
            Method = "GET",
            Path = "/orders/42",
            Status = 200,
            Decision = "allow",
            Policy = "shop/orders-callers",
            Rule = "frontend-orders",
            TraceId = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            TlsVersion = "TLSv1.3",
        };
    }

    [Benchmark(Description = "append one flow record")]
    public void Append() => _writer.Append(_record);

    [GlobalCleanup]
    public void Cleanup()
    {
        _writer.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
