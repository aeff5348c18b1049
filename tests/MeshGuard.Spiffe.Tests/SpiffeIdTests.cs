using MeshGuard.Spiffe;

namespace MeshGuard.Spiffe.Tests;

/// <summary>The valid and invalid forms of the SPIFFE ID spec (section 2), one row each.</summary>
public sealed class SpiffeIdTests
{
    [Theory]
    [InlineData("spiffe://mesh.local/ns/shop/sa/orders", "mesh.local", "/ns/shop/sa/orders")]
    [InlineData("spiffe://example.org", "example.org", "")]
    [InlineData("spiffe://trust-domain_1.example/path", "trust-domain_1.example", "/path")]
    [InlineData("spiffe://td/Upper.Case-path_ok/x", "td", "/Upper.Case-path_ok/x")]
    [InlineData("spiffe://td/a/.../b", "td", "/a/.../b")]
    [InlineData("spiffe://1.2.3.4/ip-like-trust-domain", "1.2.3.4", "/ip-like-trust-domain")]
    public void ParsesValidIds(string text, string trustDomain, string path)
    {
        var id = SpiffeId.Parse(text);
        Assert.Equal(trustDomain, id.TrustDomain);
        Assert.Equal(path, id.Path);
        Assert.Equal(text, id.ToString());
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("http://mesh.local/ns/a", "scheme must be 'spiffe://'")]
    [InlineData("SPIFFE://mesh.local/ns/a", "scheme must be lower-case")]
    [InlineData("spiffe:/mesh.local/ns/a", "scheme must be 'spiffe://'")]
    [InlineData("spiffe://", "trust domain is empty")]
    [InlineData("spiffe:///ns/a", "trust domain is empty")]
    [InlineData("spiffe://Mesh.Local/ns/a", "trust domain must be lower-case")]
    [InlineData("spiffe://mesh.local:8443/ns/a", "must not contain a port")]
    [InlineData("spiffe://user@mesh.local/ns/a", "must not contain userinfo")]
    [InlineData("spiffe://mesh.local/ns/a?x=1", "must not contain a query")]
    [InlineData("spiffe://mesh.local/ns/a#frag", "must not contain a fragment")]
    [InlineData("spiffe://mesh.local/", "must not end with '/'")]
    [InlineData("spiffe://mesh.local/ns/a/", "must not end with '/'")]
    [InlineData("spiffe://mesh.local//a", "empty segment")]
    [InlineData("spiffe://mesh.local/./a", "'.' or '..'")]
    [InlineData("spiffe://mesh.local/a/..", "'.' or '..'")]
    [InlineData("spiffe://mesh.local/a%20b", "invalid character '%'")]
    [InlineData("spiffe://mesh.local/a b", "invalid character ' '")]
    [InlineData("spiffe://mesh local/a", "invalid character ' '")]
    public void RefusesInvalidIdsWithTheReason(string text, string reason)
    {
        Assert.False(SpiffeId.TryParse(text, out var id, out var error));
        Assert.Null(id);
        Assert.Contains(reason, error, StringComparison.Ordinal);
        var thrown = Assert.Throws<FormatException>(() => SpiffeId.Parse(text));
        Assert.Contains(reason, thrown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RefusesIdsLongerThan2048Bytes()
    {
        var longest = "spiffe://td/" + new string('a', SpiffeId.MaxLength - "spiffe://td/".Length);
        Assert.True(SpiffeId.TryParse(longest, out _, out _));
        Assert.False(SpiffeId.TryParse(longest + "a", out _, out var error));
        Assert.Contains("2048", error, StringComparison.Ordinal);
    }

    [Fact]
    public void WorkloadIdsCarryNamespaceAndServiceAccount()
    {
        var id = SpiffeId.ForWorkload("mesh.local", "shop", "orders");
        Assert.Equal("spiffe://mesh.local/ns/shop/sa/orders", id.ToString());
        Assert.Equal("shop", id.GetPathValue("ns"));
        Assert.Equal("orders", id.GetPathValue("sa"));
        Assert.Null(id.GetPathValue("missing"));
    }

    [Fact]
    public void EqualIdsCompareEqual()
    {
        Assert.Equal(SpiffeId.Parse("spiffe://td/a"), SpiffeId.Parse("spiffe://td/a"));
        Assert.True(SpiffeId.Parse("spiffe://td/a") == SpiffeId.Parse("spiffe://td/a"));
        Assert.NotEqual(SpiffeId.Parse("spiffe://td/a"), SpiffeId.Parse("spiffe://td/A"));
    }

    [Fact]
    public void AWorkloadIdNeedsAPath()
    {
        Assert.True(SpiffeId.TryParseWorkload("spiffe://mesh.local/ns/shop/sa/orders", out var id, out _));
        Assert.True(id.IsWorkload);
        Assert.False(SpiffeId.TryParseWorkload("spiffe://mesh.local", out _, out var error));
        Assert.Contains("names a trust domain, not a workload", error, StringComparison.Ordinal);
        Assert.False(SpiffeId.Parse("spiffe://mesh.local").IsWorkload);
    }
}
