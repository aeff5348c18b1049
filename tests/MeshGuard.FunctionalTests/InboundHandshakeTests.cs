using System.Security.Cryptography.X509Certificates;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// The inbound port admits only peers with a valid SVID of this mesh; everyone else fails the handshake and the app
/// sees nothing. The refusals are MeshGuard.Spiffe's verification (X509SvidVerifier through SvidTls), the same code in
/// both sidecar builds; every other class runs the admitted handshake on both.
/// </summary>
[Collection(nameof(MeshCollection))]
[Trait("Subject", "SpiffeTls")]
public sealed class InboundHandshakeTests(MeshFixture mesh)
{
    private const string Caller = "spiffe://mesh.local/ns/shop/sa/checkout";

    private async Task AssertRefusedAndAppSawNothingAsync(string path, X509Certificate2? certificate, X509Certificate2Collection? chain)
    {
        var outcome = await PeerClient.GetAsync(mesh.Orders.InboundPort, path, mesh.Bundle, certificate, chain);
        Assert.True(outcome.Refused, $"expected a failed handshake, got {outcome.Status} {outcome.Body}");
        await Task.Delay(200);
        Assert.DoesNotContain(mesh.OrdersApp.Requests, r => r.Path == path);
    }

    [Fact]
    public async Task AValidSvidFromTheMeshCaIsAdmitted()
    {
        var outcome = await PeerClient.GetAsync(mesh.Orders.InboundPort, "/admitted", mesh.Bundle, mesh.RealCa.IssueLeaf(Caller), mesh.RealCa.Intermediates);
        Assert.Equal(200, outcome.Status);
        var seen = Assert.Single(mesh.OrdersApp.Requests, r => r.Path == "/admitted");
        Assert.Equal($"By={mesh.Orders.Identity};URI={Caller}", seen.Headers["x-forwarded-client-cert"]);
    }

    [Fact]
    public async Task ACertificateNamingAnIssuerUrlMakesNeitherTheSidecarNorTheControlPlaneFetchIt()
    {
        // A listener at the address the certificate points at: a chain builder that goes online would connect here.
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var connections = 0;
        var accepting = Task.Run(async () =>
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync();
                Interlocked.Increment(ref connections);
            }
        });
        try
        {
            var url = $"http://127.0.0.1:{((System.Net.IPEndPoint)listener.LocalEndpoint).Port}";
            // Issued by a CA nobody trusts and sent without its intermediate: only a download could complete the chain.
            var stranger = new TestCa();
            var leaf = stranger.IssueLeaf(new TestCa.LeafOptions { Uris = [Caller], AuthorityInformationAccessUrl = url });
            await AssertRefusedAndAppSawNothingAsync("/aia", leaf, []);
            var atControlPlane = await PeerClient.GetAsync(mesh.Mesh.ControlPlane!.GrpcPort, "/aia", mesh.Bundle, leaf, []);
            Assert.True(atControlPlane.Refused || atControlPlane.Status is >= 400, $"the control plane answered {atControlPlane.Status}");
            await Task.Delay(1000);
            Assert.Equal(0, Volatile.Read(ref connections));
        }
        finally
        {
            listener.Stop();
            await Task.WhenAny(accepting, Task.Delay(1000));
        }
    }

    [Fact]
    public Task AClientWithoutACertificateIsRefused() =>
        AssertRefusedAndAppSawNothingAsync("/no-cert", null, null);

    [Fact]
    public Task ASelfSignedCertificateWithAValidLookingSpiffeIdIsRefused() =>
        AssertRefusedAndAppSawNothingAsync("/self-signed", mesh.RealCa.IssueLeaf(new TestCa.LeafOptions { Uris = [Caller], SelfSigned = true }), null);

    [Fact]
    public Task AnExpiredSvidFromTheMeshCaIsRefused()
    {
        var now = DateTimeOffset.UtcNow;
        var expired = mesh.RealCa.IssueLeaf(new TestCa.LeafOptions { Uris = [Caller], NotAfter = now.AddSeconds(-2) });
        return AssertRefusedAndAppSawNothingAsync("/expired", expired, mesh.RealCa.Intermediates);
    }

    [Fact]
    public Task AnSvidOfAnotherTrustDomainIsRefused()
    {
        var other = new TestCa("other.example");
        return AssertRefusedAndAppSawNothingAsync("/other-domain", other.IssueLeaf("spiffe://other.example/ns/shop/sa/checkout"), other.Intermediates);
    }

    [Fact]
    public Task ALeafWithCaTrueFromTheMeshCaIsRefused() =>
        AssertRefusedAndAppSawNothingAsync("/ca-leaf", mesh.RealCa.IssueLeaf(new TestCa.LeafOptions { Uris = [Caller], IsCa = true }), mesh.RealCa.Intermediates);

    [Fact]
    public Task AnSvidFromAnotherCaClaimingThisTrustDomainIsRefused()
    {
        var impostor = new TestCa();
        return AssertRefusedAndAppSawNothingAsync("/impostor", impostor.IssueLeaf(Caller), impostor.Intermediates);
    }

    [Fact]
    public Task AnSvidThatIsNotYetValidIsRefused() =>
        AssertRefusedAndAppSawNothingAsync("/not-yet-valid",
            mesh.RealCa.IssueLeaf(new TestCa.LeafOptions { Uris = [Caller], NotBefore = DateTimeOffset.UtcNow.AddMinutes(10) }), mesh.RealCa.Intermediates);

    [Theory]
    [InlineData("/no-uri-san", new string[0])]
    [InlineData("/two-uri-sans", new[] { Caller, "spiffe://mesh.local/ns/shop/sa/orders" })]
    [InlineData("/https-uri", new[] { "https://mesh.local/ns/shop/sa/checkout" })]
    [InlineData("/trust-domain-only", new[] { "spiffe://mesh.local" })]
    public Task ALeafFromTheMeshCaWithoutExactlyOneSpiffeIdIsRefused(string path, string[] uris) =>
        AssertRefusedAndAppSawNothingAsync(path, mesh.RealCa.IssueLeaf(new TestCa.LeafOptions { Uris = uris }), mesh.RealCa.Intermediates);

    [Fact]
    public Task AnSvidForServerAuthenticationOnlyIsRefusedAsAClient() =>
        AssertRefusedAndAppSawNothingAsync("/server-auth-only",
            mesh.RealCa.IssueLeaf(new TestCa.LeafOptions { Uris = [Caller], ExtendedKeyUsages = [TestCa.ServerAuth] }), mesh.RealCa.Intermediates);

    [Theory]
    [InlineData("-tls1")]
    [InlineData("-tls1_1")]
    [InlineData("-tls1_2")]
    public async Task AnOlderTlsVersionIsRefusedEvenWithAValidSvid(string version)
    {
        using var temp = new TempDirectory();
        var (leaf, key, chain) = WriteSvid(temp, mesh.RealCa.IssueLeaf(Caller));
        // SECLEVEL=0 lets openssl itself offer the old versions; the sidecar must be the one that refuses.
        var output = await OpenSsl.SClientAsync(["-connect", $"127.0.0.1:{mesh.Orders.InboundPort}", version, "-cipher", "DEFAULT:@SECLEVEL=0",
            "-cert", leaf, "-key", key, "-cert_chain", chain, "-ign_eof"], "GET /old-tls HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n");
        Assert.DoesNotContain("HTTP/1.1", output, StringComparison.Ordinal);
        Assert.Matches("alert protocol version|no protocols available|wrong version number|unsupported protocol", output);
        Assert.DoesNotContain(mesh.OrdersApp.Requests, r => r.Path == "/old-tls");
    }

    private (string Leaf, string Key, string Chain) WriteSvid(TempDirectory temp, X509Certificate2 leaf)
    {
        File.WriteAllText(temp.Combine("leaf.pem"), leaf.ExportCertificatePem());
        File.WriteAllText(temp.Combine("key.pem"), leaf.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(temp.Combine("chain.pem"), mesh.RealCa.Intermediate.ExportCertificatePem());
        return (temp.Combine("leaf.pem"), temp.Combine("key.pem"), temp.Combine("chain.pem"));
    }

    [Fact]
    public async Task OpenSslWithAnSvidCompletesTheHandshakeAndWithoutOneIsRefused()
    {
        using var temp = new TempDirectory();
        var (leaf, key, chain) = WriteSvid(temp, mesh.RealCa.IssueLeaf(Caller));
        var connect = $"127.0.0.1:{mesh.Orders.InboundPort}";

        var withSvid = await OpenSsl.SClientAsync(["-connect", connect, "-tls1_3", "-CAfile", mesh.Mesh.Data.TrustBundle, "-verify_return_error",
            "-cert", leaf, "-key", key, "-cert_chain", chain, "-ign_eof"],
            "GET /openssl HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n");
        Assert.Contains("HTTP/1.1 200", withSvid, StringComparison.Ordinal);
        Assert.Contains("Verify return code: 0 (ok)", withSvid, StringComparison.Ordinal);

        var without = await OpenSsl.SClientAsync(["-connect", connect, "-tls1_3", "-CAfile", mesh.Mesh.Data.TrustBundle, "-ign_eof"],
            "GET /openssl-no-cert HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n");
        // TLS 1.3 lets the client finish before the server judges its (missing) certificate; the server then
        // closes the connection, so openssl gets no HTTP answer at all.
        Assert.DoesNotContain("HTTP/1.1", without, StringComparison.Ordinal);
        Assert.DoesNotContain(mesh.OrdersApp.Requests, r => r.Path == "/openssl-no-cert");
    }
}

[CollectionDefinition(nameof(MeshCollection))]
public sealed class MeshCollection : ICollectionFixture<MeshFixture>;
