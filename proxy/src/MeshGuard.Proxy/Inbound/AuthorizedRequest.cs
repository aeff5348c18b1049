using MeshGuard.Policy.Engine;
using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// The proof that a request passed authorization, set on the request only then: the forwarder sends the app
/// what this names (method and canonical target) and nothing else, and refuses to forward without it.
/// </summary>
internal sealed class AuthorizedRequest(CanonicalRequest request, Decision decision)
{
    private static readonly UriCreationOptions Verbatim = new() { DangerousDisablePathAndQueryCanonicalization = true };

    public CanonicalRequest Request { get; } = request;

    public Decision Decision { get; } = decision;

    /// <summary>
    /// The app's address for this request. The path is already canonical: Uri must not rewrite it again (it would
    /// remove dot segments and unescape characters of its own accord, the very differences this view closes).
    /// </summary>
    public Uri AppUri(string appPrefix) =>
        new(string.Concat(appPrefix, Request.Path, Request.Target.Query), in Verbatim);

    public static AuthorizedRequest Of(HttpContext context) =>
        context.Features.Get<AuthorizedRequest>() ?? throw new InvalidOperationException("a request reached the app leg without passing authorization");
}
