using System.Security.Cryptography.X509Certificates;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;

namespace MeshGuard.Spiffe.Tests;

public sealed class X509SvidVerifierTests
{
    private const string Orders = "spiffe://mesh.local/ns/shop/sa/orders";
    private static readonly TestCa Ca = new();

    private static SvidVerification Verify(X509Certificate2 leaf, DateTimeOffset? at = null) =>
        X509SvidVerifier.Verify(leaf, Ca.Intermediates, Ca.Bundle, at ?? DateTimeOffset.UtcNow);

    [Fact]
    public void AcceptsAValidSvidAndReturnsItsId()
    {
        var result = Verify(Ca.IssueLeaf(Orders));
        Assert.True(result.IsValid, result.Error);
        Assert.Equal(Orders, result.Id!.ToString());
    }

    [Fact]
    public void RefusesALeafThatIsACa() =>
        Assert.Equal("leaf certificate is a CA", Verify(Ca.IssueLeaf(new TestCa.LeafOptions { Uris = [Orders], IsCa = true })).Error);

    [Theory]
    [InlineData(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyCertSign)]
    [InlineData(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.CrlSign)]
    public void RefusesALeafThatMaySignCertificatesOrCrls(X509KeyUsageFlags usage) =>
        Assert.Equal("leaf certificate has keyCertSign or cRLSign", Verify(Ca.IssueLeaf(new TestCa.LeafOptions { Uris = [Orders], KeyUsage = usage })).Error);

    [Fact]
    public void RefusesALeafWithoutUriSan() =>
        Assert.Equal("leaf certificate has no URI SAN", Verify(Ca.IssueLeaf(new TestCa.LeafOptions())).Error);

    [Fact]
    public void RefusesALeafWithTwoUriSans() =>
        Assert.Equal("leaf certificate has more than one URI SAN",
            Verify(Ca.IssueLeaf(new TestCa.LeafOptions { Uris = [Orders, "spiffe://mesh.local/ns/shop/sa/other"] })).Error);

    [Fact]
    public void RefusesAUriSanThatIsNotASpiffeId() =>
        Assert.StartsWith("leaf URI SAN is not a SPIFFE ID", Verify(Ca.IssueLeaf("https://mesh.local/orders")).Error, StringComparison.Ordinal);

    [Fact]
    public void RefusesAnIdOfAnotherTrustDomain() =>
        Assert.Equal("trust domain 'other.example' is not in the bundle", Verify(Ca.IssueLeaf("spiffe://other.example/ns/a/sa/b")).Error);

    [Fact]
    public void RefusesAnSvidFromAnotherCaOfTheSameTrustDomain()
    {
        var impostor = new TestCa();
        var result = X509SvidVerifier.Verify(impostor.IssueLeaf(Orders), impostor.Intermediates, Ca.Bundle, DateTimeOffset.UtcNow);
        Assert.Equal("certificate does not chain to the trust bundle", result.Error);
    }

    [Fact]
    public void RefusesASelfSignedLeafWithAValidLookingId() =>
        Assert.False(Verify(Ca.IssueLeaf(new TestCa.LeafOptions { Uris = [Orders], SelfSigned = true })).IsValid);

    [Fact]
    public void RefusesAnExpiredSvid()
    {
        var now = DateTimeOffset.UtcNow;
        var leaf = Ca.IssueLeaf(new TestCa.LeafOptions { Uris = [Orders], NotBefore = now.AddHours(-2), NotAfter = now.AddHours(-1) });
        Assert.Equal("certificate expired or not yet valid", Verify(leaf).Error);
    }

    [Fact]
    public void JudgesExpiryAtTheGivenTimeNotTheClock()
    {
        var leaf = Ca.IssueLeaf(Orders);
        Assert.True(Verify(leaf, DateTimeOffset.UtcNow.AddMinutes(30)).IsValid);
        Assert.False(Verify(leaf, DateTimeOffset.UtcNow.AddHours(2)).IsValid);
    }

    [Fact]
    public void RefusesAChainMissingItsIntermediate()
    {
        var result = X509SvidVerifier.Verify(Ca.IssueLeaf(Orders), null, Ca.Bundle, DateTimeOffset.UtcNow);
        Assert.False(result.IsValid);
    }

    [Theory]
    [InlineData(SvidPurpose.Client, new[] { TestCa.ServerAuth }, "leaf certificate is not for client authentication (extendedKeyUsage)")]
    [InlineData(SvidPurpose.Server, new[] { TestCa.ClientAuth }, "leaf certificate is not for server authentication (extendedKeyUsage)")]
    public void RefusesAnSvidWhoseExtendedKeyUsageExcludesTheRoleItPlays(SvidPurpose purpose, string[] usages, string reason)
    {
        var leaf = Ca.IssueLeaf(new TestCa.LeafOptions { Uris = [Orders], ExtendedKeyUsages = usages });
        Assert.Equal(reason, X509SvidVerifier.Verify(leaf, Ca.Intermediates, Ca.Bundle, DateTimeOffset.UtcNow, purpose).Error);
        // The same certificate still passes where no TLS role is asked of it.
        Assert.True(X509SvidVerifier.Verify(leaf, Ca.Intermediates, Ca.Bundle, DateTimeOffset.UtcNow).IsValid);
    }

    [Theory]
    [InlineData(SvidPurpose.Client)]
    [InlineData(SvidPurpose.Server)]
    public void AcceptsAnSvidWithBothUsagesOrNoExtendedKeyUsageForEitherRole(SvidPurpose purpose)
    {
        Assert.True(X509SvidVerifier.Verify(Ca.IssueLeaf(Orders), Ca.Intermediates, Ca.Bundle, DateTimeOffset.UtcNow, purpose).IsValid);
        var unrestricted = Ca.IssueLeaf(new TestCa.LeafOptions { Uris = [Orders], ExtendedKeyUsages = [] });
        Assert.True(X509SvidVerifier.Verify(unrestricted, Ca.Intermediates, Ca.Bundle, DateTimeOffset.UtcNow, purpose).IsValid);
    }

    [Fact]
    public void RefusesAnSvidOfACaOnceItsRootLeavesTheBundle()
    {
        var retiring = new TestCa();
        var leaf = retiring.IssueLeaf(Orders);
        var overlap = TrustBundle.Create("mesh.local", [X509CertificateLoader.LoadCertificate(Ca.Root.RawData), X509CertificateLoader.LoadCertificate(retiring.Root.RawData)]);
        Assert.True(X509SvidVerifier.Verify(leaf, retiring.Intermediates, overlap, DateTimeOffset.UtcNow).IsValid);
        Assert.Equal("certificate does not chain to the trust bundle", X509SvidVerifier.Verify(leaf, retiring.Intermediates, Ca.Bundle, DateTimeOffset.UtcNow).Error);
    }

    [Fact]
    public void RefusesAnSvidThatIsNotYetValid() =>
        Assert.Equal("certificate expired or not yet valid",
            Verify(Ca.IssueLeaf(new TestCa.LeafOptions { Uris = [Orders], NotBefore = DateTimeOffset.UtcNow.AddMinutes(10) })).Error);
}
