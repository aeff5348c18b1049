using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;

namespace MeshGuard.Spiffe.Tests;

public sealed class TrustBundleTests
{
    [Fact]
    public void RoundTripsThroughPemAndTakesTheTrustDomainFromTheRoot()
    {
        var ca = new TestCa("example.org");
        var bundle = TrustBundle.FromPem(ca.Bundle.ToPem());
        Assert.Equal("example.org", bundle.TrustDomain);
        Assert.Single(bundle.Roots);
        Assert.Equal(ca.Root.Thumbprint, bundle.Roots[0].Thumbprint);
    }

    [Fact]
    public void HoldsSeveralRootsSoARootCanBeRotatedWithOverlap()
    {
        var oldCa = new TestCa();
        var newCa = new TestCa();
        var bundle = TrustBundle.FromPem(oldCa.Bundle.ToPem() + newCa.Bundle.ToPem());
        Assert.Equal(2, bundle.Roots.Count);
        Assert.True(X509SvidVerifier.Verify(oldCa.IssueLeaf("spiffe://mesh.local/a"), oldCa.Intermediates, bundle, DateTimeOffset.UtcNow).IsValid);
        Assert.True(X509SvidVerifier.Verify(newCa.IssueLeaf("spiffe://mesh.local/a"), newCa.Intermediates, bundle, DateTimeOffset.UtcNow).IsValid);
    }

    [Theory]
    [InlineData("", "holds no certificate")]
    [InlineData("not a pem at all", "holds no certificate")]
    [InlineData("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not valid PEM")]
    public void RefusesABadBundleWithAClearReason(string pem, string reason)
    {
        var error = Assert.Throws<FormatException>(() => TrustBundle.FromPem(pem));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RefusesABundleMixingTrustDomains()
    {
        var error = Assert.Throws<FormatException>(() => TrustBundle.FromPem(new TestCa("a.example").Bundle.ToPem() + new TestCa("b.example").Bundle.ToPem()));
        Assert.Contains("mixes trust domains", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RefusesABundleWhoseCertificateIsNotACa()
    {
        var leaf = new TestCa().IssueLeaf("spiffe://mesh.local");
        var error = Assert.Throws<FormatException>(() => TrustBundle.FromPem(leaf.ExportCertificatePem()));
        Assert.Contains("is not a CA", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadNamesTheFileThatCouldNotBeRead()
    {
        var error = Assert.Throws<FormatException>(() => TrustBundle.Load("/nonexistent/bundle.pem"));
        Assert.Contains("/nonexistent/bundle.pem", error.Message, StringComparison.Ordinal);
    }
}
