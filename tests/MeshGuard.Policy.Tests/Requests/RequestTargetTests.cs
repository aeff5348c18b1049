using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using MeshGuard.Policy.Requests;

namespace MeshGuard.Policy.Tests.Requests;

public sealed class RequestTargetTests
{
    private static string Canonical(string raw, PathNormalization? rules = null)
    {
        Assert.Equal(TargetVerdict.Canonical, RequestTarget.TryParse(raw, rules ?? PathNormalization.Default, out var target));
        return target.Path + target.Query.ToString();
    }

    private static TargetVerdict Verdict(string raw, PathNormalization? rules = null) =>
        RequestTarget.TryParse(raw, rules ?? PathNormalization.Default, out _);

    [Theory]
    [InlineData("/", "/")]
    [InlineData("/orders/42", "/orders/42")]
    [InlineData("/orders/../secret", "/secret")]
    [InlineData("/orders/./42", "/orders/42")]
    [InlineData("/orders/42/..", "/orders/")]
    [InlineData("/orders/.", "/orders/")]
    [InlineData("/..", "/")]
    [InlineData("/../../a", "/a")]
    [InlineData("/a/b/../../../c", "/c")]
    [InlineData("/.well-known/x", "/.well-known/x")]
    [InlineData("/a/...", "/a/...")]
    [InlineData("/a/.b/..c", "/a/.b/..c")]
    [InlineData("/%6Frders/%34%32", "/orders/42")]
    [InlineData("/orders/%2E%2E/secret", "/secret")]
    [InlineData("/orders/%2e./secret", "/secret")]
    [InlineData("/a%7e%41", "/a~A")]
    [InlineData("/a%20b", "/a%20b")]
    [InlineData("/a%3fb", "/a%3Fb")]
    [InlineData("/a%c3%a9", "/a%C3%A9")]
    [InlineData("//a///b//", "/a/b/")]
    [InlineData("///", "/")]
    [InlineData("/a//../b", "/b")]
    [InlineData("/orders?x=/../y&z=%2F", "/orders?x=/../y&z=%2F")]
    [InlineData("/a/../b?q", "/b?q")]
    public void PathsAreMadeCanonicalByTheDefaultRules(string raw, string expected) => Assert.Equal(expected, Canonical(raw));

    [Theory]
    [InlineData("http://orders/orders%2f..%2fsecret", TargetVerdict.NotOriginForm)]
    [InlineData("orders:8080", TargetVerdict.NotOriginForm)]
    [InlineData("*", TargetVerdict.NotOriginForm)]
    [InlineData("", TargetVerdict.NotOriginForm)]
    [InlineData("/orders%2f..%2fsecret", TargetVerdict.EscapedSlash)]
    [InlineData("/orders%2F", TargetVerdict.EscapedSlash)]
    [InlineData("/orders%5c..%5csecret", TargetVerdict.EscapedSlash)]
    [InlineData("/orders/..;/admin", TargetVerdict.PathParameter)]
    [InlineData("/a;jsessionid=1", TargetVerdict.PathParameter)]
    [InlineData("/a\\..\\b", TargetVerdict.InvalidCharacter)]
    [InlineData("/a b", TargetVerdict.InvalidCharacter)]
    [InlineData("/a#frag", TargetVerdict.InvalidCharacter)]
    [InlineData("/a?b#frag", TargetVerdict.InvalidCharacter)]
    [InlineData("/a?b c", TargetVerdict.InvalidCharacter)]
    [InlineData("/a\u00e9", TargetVerdict.InvalidCharacter)]
    [InlineData("/a\u0000", TargetVerdict.InvalidCharacter)]
    [InlineData("/a%", TargetVerdict.InvalidEscape)]
    [InlineData("/a%2", TargetVerdict.InvalidEscape)]
    [InlineData("/a%zz", TargetVerdict.InvalidEscape)]
    [InlineData("/a?%x1", TargetVerdict.InvalidCharacter)]
    public void TargetsTheRulesRefuseAreRefusedWithTheirReason(string raw, TargetVerdict expected) => Assert.Equal(expected, Verdict(raw));

    [Fact]
    public void AnOverlongTargetIsRefused() => Assert.Equal(TargetVerdict.TooLong, Verdict("/" + new string('a', RequestTarget.MaxLength)));

    [Fact]
    public void EscapedSlashesCanBeKeptEncodedOrDecodedInstead()
    {
        var keep = PathNormalization.Default with { EscapedSlashes = EscapedSlashes.Keep };
        var decode = PathNormalization.Default with { EscapedSlashes = EscapedSlashes.Decode };
        Assert.Equal("/orders%2F..%2Fsecret", Canonical("/orders%2f..%2fsecret", keep));
        Assert.Equal("/a%5Cb", Canonical("/a%5cb", keep));
        Assert.Equal("/secret", Canonical("/orders%2f..%2fsecret", decode));
        Assert.Equal("/a/b", Canonical("/a%5Cb", decode));
    }

    [Fact]
    public void SlashesAreKeptUnmergedWhenTheRulesSaySo()
    {
        var keep = PathNormalization.Default with { MergeSlashes = false };
        Assert.Equal("//a///b", Canonical("//a///b", keep));
        Assert.Equal("/a/", Canonical("/a//..", keep));
    }

    [Fact]
    public void PathParametersCanBeKeptOrStripped()
    {
        var keep = PathNormalization.Default with { PathParameters = PathParameters.Keep };
        var strip = PathNormalization.Default with { PathParameters = PathParameters.Strip };
        Assert.Equal("/a;v=1/..;/admin", Canonical("/a;v=1/..;/admin", keep));
        Assert.Equal("/admin", Canonical("/a;v=1/..;/admin", strip));
        Assert.Equal("/a/b", Canonical("/a;x/b;y=2", strip));
    }

    [Fact]
    public void ACanonicalPathWithoutQueryIsTheRawStringItself()
    {
        const string raw = "/orders/42";
        Assert.Equal(TargetVerdict.Canonical, RequestTarget.TryParse(raw, PathNormalization.Default, out var target));
        Assert.Same(raw, target.Path);
        var known = new string("/orders/42".AsSpan());
        Assert.Equal(TargetVerdict.Canonical, RequestTarget.TryParse("/orders/42?x=1", PathNormalization.Default, out target, known));
        Assert.Same(known, target.Path);
    }

    [Theory]
    [InlineData("escaped-slashes=keep,merge-slashes=false,path-parameters=strip")]
    [InlineData("escaped-slashes=decode")]
    [InlineData("")]
    public void RulesReadBackFromTheirTextForm(string text)
    {
        Assert.True(PathNormalization.TryParse(text, out var rules, out _));
        Assert.True(PathNormalization.TryParse(rules.ToString(), out var again, out _));
        Assert.Equal(rules, again);
    }

    [Fact]
    public void AnUnknownRuleIsRefusedWithWhatIsAllowed()
    {
        Assert.False(PathNormalization.TryParse("escaped-slashes=maybe", out _, out var error));
        Assert.Contains("escaped-slashes=reject|keep|decode", error, StringComparison.Ordinal);
    }

    // Targets from an alphabet that hits every rule often.
    private static readonly string[] Pieces = ["/", "/", "a", "b", ".", "..", "%2e", "%2E", "%2f", "%5C", "%41", "%7e", "%20", "%", ";", ";x", "//", "~", "?", "=", "\\", "%zz", "é"];

    private static readonly Arbitrary<string> Targets =
        Gen.Elements(Pieces).ArrayOf().Select(parts => "/" + string.Concat(parts)).ToArbitrary();

    private static readonly PathNormalization[] AllRules =
        [.. from e in Enum.GetValues<EscapedSlashes>() from m in new[] { true, false } from p in Enum.GetValues<PathParameters>()
            select new PathNormalization { EscapedSlashes = e, MergeSlashes = m, PathParameters = p }];

    [Property(MaxTest = 2000)]
    public Property ACanonicalPathIsAFixedPointAndHoldsNoDotSegmentNorUnreservedEscape() =>
        Prop.ForAll(Targets, Gen.Elements(AllRules).ToArbitrary(), (raw, rules) =>
        {
            if (RequestTarget.TryParse(raw, rules, out var target) != TargetVerdict.Canonical)
            {
                return true;
            }
            var path = target.Path;
            var again = RequestTarget.TryParse(path, rules, out var second) == TargetVerdict.Canonical && second.Path == path;
            var segments = path.Split('/');
            return again
                && path.StartsWith('/')
                && !segments.Contains(".") && !segments.Contains("..")
                && !System.Text.RegularExpressions.Regex.IsMatch(path, "%(2[Ee]|4[1-9A-Fa-f]|7[Ee])")
                && (!rules.MergeSlashes || !path.Contains("//", StringComparison.Ordinal))
                && (rules.PathParameters != PathParameters.Strip || !path.Contains(';', StringComparison.Ordinal));
        });

    [Property(MaxTest = 2000)]
    public Property TheDefaultRulesAgreeWithTheReferenceReading() =>
        Prop.ForAll(Targets, raw =>
        {
            var verdict = RequestTarget.TryParse(raw, PathNormalization.Default, out var target);
            var expected = Reference(raw);
            return expected is null ? verdict != TargetVerdict.Canonical : verdict == TargetVerdict.Canonical && target.Path == expected;
        });

    /// <summary>RFC 3986 read plainly (the default rules), for comparison: null where the rules refuse the target.</summary>
    private static string? Reference(string raw)
    {
        var question = raw.IndexOf('?', StringComparison.Ordinal);
        var path = question < 0 ? raw : raw[..question];
        var query = question < 0 ? "" : raw[(question + 1)..];
        if (query.Contains('\\') || query.Contains('é') || System.Text.RegularExpressions.Regex.IsMatch(query, "%(?![0-9A-Fa-f]{2})"))
        {
            return null;
        }
        if (path.Contains(';') || path.Contains('\\') || path.Contains('é') || path.Contains(' '))
        {
            return null;
        }
        var decoded = new System.Text.StringBuilder();
        for (var i = 0; i < path.Length; i++)
        {
            if (path[i] != '%')
            {
                decoded.Append(path[i]);
                continue;
            }
            if (i + 2 >= path.Length || !Uri.IsHexDigit(path[i + 1]) || !Uri.IsHexDigit(path[i + 2]))
            {
                return null;
            }
            var c = (char)Convert.ToInt32(path.Substring(i + 1, 2), 16);
            if (c is '/' or '\\')
            {
                return null;
            }
            decoded.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '~' ? c.ToString() : "%" + path.Substring(i + 1, 2).ToUpperInvariant());
            i += 2;
        }
        var parts = decoded.ToString().Split('/').Skip(1).ToList();
        var output = new List<string>();
        for (var i = 0; i < parts.Count; i++)
        {
            var last = i == parts.Count - 1;
            if (parts[i] == "..")
            {
                if (output.Count > 0)
                {
                    output.RemoveAt(output.Count - 1);
                }
            }
            else if (parts[i] is not ("." or ""))
            {
                output.Add(parts[i]);
            }
            // A path that ends in ".", ".." or "" ends with a slash.
            if (last && parts[i] is "." or ".." or "")
            {
                output.Add("");
            }
        }
        return "/" + string.Join('/', output);
    }
}
