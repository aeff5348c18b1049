using MeshGuard.Policy.Engine;
using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// The proof that a request passed authorization, made only by the authorizer and only of an allow decision: the app
/// legs send the app what this names (method and canonical target) and nothing else, and refuse to forward without it.
/// A value, not an object (one allocation less per request); a default one proves nothing (<see cref="IsIssued"/>), so
/// the legs fail closed on it.
/// </summary>
internal readonly struct AuthorizedRequest
{
    private static readonly UriCreationOptions Verbatim = new() { DangerousDisablePathAndQueryCanonicalization = true };

    internal AuthorizedRequest(CanonicalRequest request, Decision decision)
    {
        if (!decision.IsAllowed)
        {
            throw new ArgumentException("only an allow decision makes a proof", nameof(decision));
        }
        Request = request;
        Decision = decision;
    }

    public CanonicalRequest Request { get; }

    public Decision Decision { get; }

    /// <summary>Made by the authorizer of an allow decision (not a default value).</summary>
    public bool IsIssued => Decision.IsAllowed;

    /// <summary>This proof, or an exception for a request that reached an app leg without one.</summary>
    public AuthorizedRequest Required() =>
        IsIssued ? this : throw new InvalidOperationException("a request reached the app leg without passing authorization");

    /// <summary>
    /// The app's address for this request. The path is already canonical: Uri must not rewrite it again (it would
    /// remove dot segments and unescape characters of its own accord, the very differences this view closes).
    /// </summary>
    public Uri AppUri(string appPrefix) =>
        new(string.Concat(appPrefix, Request.Path, Request.Target.Query), in Verbatim);

    /// <summary>For the general path, which reaches the request through its features.</summary>
    public void SetOn(HttpContext context) => context.Features.Set<AuthorizedRequest?>(this);

    public static AuthorizedRequest Of(HttpContext context) => context.Features.Get<AuthorizedRequest?>().GetValueOrDefault().Required();
}
