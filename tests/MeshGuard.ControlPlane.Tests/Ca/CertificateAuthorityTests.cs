using System.Security.Cryptography.X509Certificates;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.ControlPlane.Tests.Ca;

public sealed class CertificateAuthorityTests : IDisposable
{
    private static readonly SpiffeId Orders = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/orders");
    private readonly TempDirectory _temp = new();
    private readonly DataDirectory _data;

    public CertificateAuthorityTests() => _data = new DataDirectory(_temp.Combine("data"));

    public void Dispose() => _temp.Dispose();

    private static SvidSigningRequest Csr(SpiffeId? id = null)
    {
        using var key = SvidKey.CreateKey();
        var pem = id is null
            ? new CertificateRequest("CN=x", key, System.Security.Cryptography.HashAlgorithmName.SHA256).CreateSigningRequestPem()
            : SvidKey.CreateSigningRequestPem(key, id);
        Assert.True(SvidSigningRequest.TryParse(pem, out var csr, out var error), error);
        return csr!;
    }

    [Fact]
    public void FirstStartCreatesRootAndIntermediateWithOwnerOnlyKeyFiles()
    {
        using var ca = CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System);
        foreach (var key in new[] { _data.RootKey, _data.IntermediateKey })
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        }
        Assert.True(ca.Root.IsCertificateAuthority());
        Assert.True(ca.Intermediate.IsCertificateAuthority());
        Assert.Equal("spiffe://mesh.local", ca.Root.GetUriSans().Single());
        // P-256 by its OID, whatever name the platform gives it.
        Assert.Equal("1.2.840.10045.3.1.7", ca.Intermediate.GetECDsaPublicKey()!.ExportParameters(false).Curve.Oid.Value);
        Assert.Equal("1.2.840.10045.3.1.7", ca.Root.GetECDsaPublicKey()!.ExportParameters(false).Curve.Oid.Value);
    }

    [Fact]
    public void SecondStartLoadsTheSameCa()
    {
        string thumbprint;
        using (var first = CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System))
        {
            thumbprint = first.Root.Thumbprint;
        }
        using var second = CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System);
        Assert.Equal(thumbprint, second.Root.Thumbprint);
    }

    [Theory]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead)]
    [InlineData(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead)]
    public void RefusesToStartWhenAKeyFileIsReadableByOthers(UnixFileMode mode)
    {
        CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System).Dispose();
        File.SetUnixFileMode(_data.IntermediateKey, mode);
        var error = Assert.Throws<InsecureFileException>(() => CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System));
        Assert.Contains(_data.IntermediateKey, error.Message, StringComparison.Ordinal);
        Assert.Contains("chmod 600", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RefusesToStartWhenAKeyFileIsMissingRatherThanMakeANewCa()
    {
        CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System).Dispose();
        File.Delete(_data.RootKey);
        var error = Assert.Throws<InvalidOperationException>(() => CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System));
        Assert.Contains($"CA key file {_data.RootKey} is missing", error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(_data.RootKey));
    }

    [Fact]
    public void CreatingTheCaLeavesNoStagingDirectoryBehind()
    {
        CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System).Dispose();
        Assert.Equal(["ca"], Directory.GetFileSystemEntries(_data.Root).Select(p => Path.GetFileName(p)!).ToArray());
        Assert.Equal(4, Directory.GetFiles(_data.CaDirectory).Length);
    }

    [Fact]
    public void RefusesACaOfAnotherTrustDomain()
    {
        CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System).Dispose();
        var error = Assert.Throws<InvalidOperationException>(() => CertificateAuthority.LoadOrCreate(_data, "other.example", TimeProvider.System));
        Assert.Contains("'mesh.local', not 'other.example'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NoSvidIsIssuedForATrustDomainWithoutAWorkloadPath()
    {
        using var ca = CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System);
        var error = Assert.Throws<ArgumentException>(() => ca.IssueSvid(Csr(), SpiffeId.Parse("spiffe://mesh.local"), TimeSpan.FromMinutes(5)));
        Assert.Contains("names a trust domain, not a workload", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void IssuedSvidHasExactlyTheShapeTheSpecWants()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var ca = CertificateAuthority.LoadOrCreate(_data, "mesh.local", time);
        using var svid = ca.IssueSvid(Csr(), Orders, TimeSpan.FromMinutes(5));

        Assert.Equal([Orders.ToString()], svid.GetUriSans());
        Assert.False(svid.IsCertificateAuthority());
        Assert.Equal(X509KeyUsageFlags.DigitalSignature, svid.GetKeyUsage());
        var eku = svid.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages;
        Assert.Equal(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"], eku.Cast<System.Security.Cryptography.Oid>().Select(o => o.Value!).Order().ToArray());
        Assert.Equal(time.GetUtcNow().AddMinutes(5).ToUnixTimeSeconds(), new DateTimeOffset(svid.NotAfter).ToUnixTimeSeconds());
        Assert.True(X509SvidVerifier.Verify(svid, [ca.Intermediate], ca.Bundle, time.GetUtcNow()).IsValid);
    }

    [Fact]
    public void IssuedSvidIsAcceptedByOpenSsl()
    {
        using var ca = CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System);
        using var svid = ca.IssueSvid(Csr(), Orders, TimeSpan.FromHours(1));
        var leaf = _temp.Combine("leaf.pem");
        File.WriteAllText(leaf, svid.ExportCertificatePem());

        var (verifyExit, verifyOutput) = OpenSsl.Run("verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", _data.RootCertificate, "-untrusted", _data.IntermediateCertificate, leaf);
        Assert.True(verifyExit == 0, verifyOutput);
        Assert.Contains(": OK", verifyOutput, StringComparison.Ordinal);
        var (serverExit, serverOutput) = OpenSsl.Run("verify", "-purpose", "sslserver", "-CAfile", _data.RootCertificate, "-untrusted", _data.IntermediateCertificate, leaf);
        Assert.True(serverExit == 0, serverOutput);

        var (textExit, text) = OpenSsl.Run("x509", "-in", leaf, "-noout", "-text");
        Assert.Equal(0, textExit);
        Assert.Contains("URI:spiffe://mesh.local/ns/shop/sa/orders", text, StringComparison.Ordinal);
        Assert.Contains("CA:FALSE", text, StringComparison.Ordinal);
        Assert.Contains("Digital Signature", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Certificate Sign", text, StringComparison.Ordinal);
        Assert.Contains("TLS Web Server Authentication, TLS Web Client Authentication", text, StringComparison.Ordinal);
        Assert.Contains("ASN1 OID: prime256v1", text, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenSslRefusesAnSvidAgainstAnotherRoot()
    {
        using var ca = CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System);
        using var svid = ca.IssueSvid(Csr(), Orders, TimeSpan.FromHours(1));
        var leaf = _temp.Combine("leaf.pem");
        File.WriteAllText(leaf, svid.ExportCertificatePem());
        var other = _temp.Combine("other-root.pem");
        File.WriteAllText(other, new TestCa().Root.ExportCertificatePem());
        var (exit, _) = OpenSsl.Run("verify", "-CAfile", other, "-untrusted", _data.IntermediateCertificate, leaf);
        Assert.NotEqual(0, exit);
    }

    [Fact]
    public void TheSanComesFromTheAttestedIdentityNotFromTheCsr()
    {
        using var ca = CertificateAuthority.LoadOrCreate(_data, "mesh.local", TimeProvider.System);
        var csr = Csr(SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/admin"));
        Assert.Equal("CSR asks for spiffe://mesh.local/ns/shop/sa/admin but the caller is spiffe://mesh.local/ns/shop/sa/orders", csr.CheckRequestedIdentity(Orders));
        using var svid = ca.IssueSvid(csr, Orders, TimeSpan.FromHours(1));
        Assert.Equal([Orders.ToString()], svid.GetUriSans());
    }
}
