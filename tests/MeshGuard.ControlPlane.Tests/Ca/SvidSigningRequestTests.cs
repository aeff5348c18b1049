using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Tests.Ca;

public sealed class SvidSigningRequestTests
{
    [Theory]
    [InlineData(null, "CSR is missing")]
    [InlineData("", "CSR is missing")]
    [InlineData("hello", "CSR is malformed")]
    [InlineData("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----", "CSR is malformed")]
    public void RefusesMalformedCsrs(string? pem, string reason)
    {
        Assert.False(SvidSigningRequest.TryParse(pem, out var csr, out var error));
        Assert.Null(csr);
        Assert.StartsWith(reason, error, StringComparison.Ordinal);
    }

    [Fact]
    public void RefusesAnOversizedCsr()
    {
        Assert.False(SvidSigningRequest.TryParse(new string('A', SvidSigningRequest.MaxPemLength + 1), out _, out var error));
        Assert.Contains("larger than", error, StringComparison.Ordinal);
    }

    [Fact]
    public void RefusesAnRsaKey()
    {
        using var rsa = RSA.Create(2048);
        var pem = new CertificateRequest("CN=x", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1).CreateSigningRequestPem();
        Assert.False(SvidSigningRequest.TryParse(pem, out _, out var error));
        Assert.Equal("CSR key must be ECDSA P-256", error);
    }

    [Fact]
    public void RefusesACsrWhoseSignatureWasTamperedWith()
    {
        using var key = SvidKey.CreateKey();
        var der = new CertificateRequest("CN=x", key, HashAlgorithmName.SHA256).CreateSigningRequest();
        der[^5] ^= 0x5A; // inside the signature
        var pem = PemEncoding.WriteString("CERTIFICATE REQUEST", der);
        Assert.False(SvidSigningRequest.TryParse(pem, out _, out var error));
        Assert.StartsWith("CSR is malformed or its signature does not verify", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ACsrForItsOwnIdentityOrForNoneIsAccepted()
    {
        var id = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/orders");
        using var key = SvidKey.CreateKey();
        Assert.True(SvidSigningRequest.TryParse(SvidKey.CreateSigningRequestPem(key, id), out var own, out _));
        Assert.Null(own!.CheckRequestedIdentity(id));
        Assert.True(SvidSigningRequest.TryParse(new CertificateRequest("CN=x", key, HashAlgorithmName.SHA256).CreateSigningRequestPem(), out var none, out _));
        Assert.Null(none!.CheckRequestedIdentity(id));
    }
}
