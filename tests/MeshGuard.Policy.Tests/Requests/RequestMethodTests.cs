using MeshGuard.Policy.Requests;

namespace MeshGuard.Policy.Tests.Requests;

public sealed class RequestMethodTests
{
    [Theory]
    [InlineData("GET")]
    [InlineData("DELETE")]
    [InlineData("PATCH")]
    [InlineData("PROPFIND")]
    [InlineData("propfind")]
    [InlineData("M-SEARCH")]
    [InlineData("X!#$%&'*+.^_`|~9")]
    public void TokensAreTakenAsSpelled(string method) => Assert.Equal(MethodVerdict.Valid, RequestMethod.Check(method));

    [Theory]
    [InlineData("delete")]
    [InlineData("Get")]
    [InlineData("pAtCh")]
    [InlineData("connect")]
    public void AStandardMethodInAnotherCaseIsRefused(string method) => Assert.Equal(MethodVerdict.NonCanonicalCase, RequestMethod.Check(method));

    [Theory]
    [InlineData("")]
    [InlineData("GET ")]
    [InlineData("GE T")]
    [InlineData("G(T")]
    [InlineData("GET\u0000")]
    [InlineData("G\u00c9T")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    public void WhatIsNotAnRfc9110TokenIsRefused(string method) => Assert.Equal(MethodVerdict.NotAToken, RequestMethod.Check(method));
}
