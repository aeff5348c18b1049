using MeshGuard.Policy.Requests;
using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// The one view of an inbound request that policy decides on and the app is sent: the method as the caller
/// spelled it (an RFC 9110 token, a standard method only in upper case) and the target made canonical by the
/// sidecar's path rules. Read from what arrived on the wire (the raw target, HTTP/1.1 and HTTP/2 alike), never from
/// the server's decoded path, so no later step can see the request differently.
/// </summary>
internal readonly struct CanonicalRequest
{
    private CanonicalRequest(string method, RequestTarget target)
    {
        Method = method;
        Target = target;
    }

    /// <summary>The method policies compare, case-sensitively.</summary>
    public string Method { get; }

    public RequestTarget Target { get; }

    public string Path => Target.Path;

    /// <summary>Reads the view, or says why the request is refused (400): the rule it broke, as flow records name it.</summary>
    public static bool TryRead(HttpContext context, PathNormalization rules, out CanonicalRequest request, out string refusal)
    {
        request = default;
        var method = context.Request.Method;
        switch (RequestMethod.Check(method))
        {
            case MethodVerdict.NotAToken:
                refusal = "method-not-a-token";
                return false;
            case MethodVerdict.NonCanonicalCase:
                refusal = "method-case";
                return false;
        }
        var raw = context.Features.GetRequiredFeature<IHttpRequestFeature>().RawTarget;
        var verdict = RequestTarget.TryParse(raw, rules, out var target, context.Request.Path.Value);
        if (verdict != TargetVerdict.Canonical)
        {
            refusal = Refusal(verdict);
            return false;
        }
        request = new CanonicalRequest(PolicyMethod(context, method), target);
        refusal = "";
        return true;
    }

    /// <summary>What a refused request asked for, as it arrived (its query left out): the record shows the attempt.</summary>
    public static string RawPath(HttpContext context)
    {
        var raw = context.Features.GetRequiredFeature<IHttpRequestFeature>().RawTarget;
        var query = raw.IndexOf('?', StringComparison.Ordinal);
        return query < 0 ? raw : raw[..query];
    }

    /// <summary>
    /// RFC 8441: a WebSocket between sidecars arrives as an HTTP/2 extended CONNECT; it is the same act as the
    /// app's upgrading GET, so policies name it GET whichever version carried it.
    /// </summary>
    private static string PolicyMethod(HttpContext context, string method) =>
        HttpMethods.IsConnect(method) && context.Features.Get<IHttpExtendedConnectFeature>() is { IsExtendedConnect: true }
            ? HttpMethods.Get
            : method;

    private static string Refusal(TargetVerdict verdict) => verdict switch
    {
        TargetVerdict.NotOriginForm => "target-not-origin-form",
        TargetVerdict.InvalidCharacter => "target-invalid-character",
        TargetVerdict.InvalidEscape => "target-invalid-escape",
        TargetVerdict.EscapedSlash => "target-escaped-slash",
        TargetVerdict.PathParameter => "target-path-parameter",
        _ => "target-too-long",
    };
}
