using System.Security.Cryptography.X509Certificates;
using BenchmarkDotNet.Attributes;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;

namespace MeshGuard.Benchmarks;

/// <summary>
/// What the inbound side pays to know its caller: the whole SVID check against the trust bundle (once per
/// TLS handshake) and reading the SPIFFE ID off the verified certificate (once per connection, never per
/// request).
/// </summary>
[MemoryDiagnoser]
public class PeerIdentityBenchmarks
{
    private TestCa _ca = null!;
    private X509Certificate2 _leaf = null!;
    private X509Certificate2Collection _intermediates = null!;

    [GlobalSetup]
    public void Setup()
    {
        _ca = new TestCa();
        _leaf = _ca.IssueLeaf("spiffe://mesh.local/ns/shop/sa/frontend");
        _intermediates = _ca.Intermediates;
    }

    [Benchmark(Description = "peer SPIFFE ID from its certificate (per connection)")]
    public SpiffeId? ReadPeerIdentity() => _leaf.GetSpiffeId();

    [Benchmark(Description = "verify an SVID chain against the bundle (per handshake)")]
    public SvidVerification VerifySvid() => X509SvidVerifier.Verify(_leaf, _intermediates, _ca.Bundle, DateTimeOffset.UtcNow);
}
