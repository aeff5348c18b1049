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
}
