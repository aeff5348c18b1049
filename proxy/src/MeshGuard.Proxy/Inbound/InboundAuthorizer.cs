using MeshGuard.Policy.Engine;
using MeshGuard.Proxy.Authorization;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.Telemetry;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// The one place an inbound call is decided, for HTTP requests and opaque TCP connections alike: a revoked caller
/// is denied whatever the policies say, no config in force denies every call (fail closed), otherwise the table
/// in force now decides (a policy change applies to open connections too). Revocations and table are read from one
/// <see cref="SidecarConfig"/>, so they always belong to the same snapshot. Every decision, whatever made it, is
/// written to the decision log and counted here once; a permitted request comes back with the proof
/// (<see cref="AuthorizedRequest"/>) the app leg requires.
/// </summary>
internal sealed partial class InboundAuthorizer(
    SidecarConfigSource config, DecisionLog decisions, AuthorizationMetrics metrics, TimeProvider time, ILogger<InboundAuthorizer> logger)
{
    /// <summary>Decides a request in its canonical view: permitted with its proof, or denied with the decision that refused it.</summary>
    public InboundVerdict Authorize(PeerIdentityFeature peer, int port, in CanonicalRequest request, IHeaderDictionary headers)
    {
        var current = config.Current;
        var decision = current is null ? Decision.NoConfig
            : current.IsRevoked(peer.Caller.Id) ? Decision.Revoked
            : current.Authorizer.Evaluate(peer.Caller, port, request.Method, request.Path, new KestrelHeaders(headers));
        Note(peer, request.Method, request.Path, decision);
        return decision.IsAllowed ? InboundVerdict.Permitted(new AuthorizedRequest(request, decision)) : InboundVerdict.Denied(decision);
    }

    /// <summary>Decides an opaque TCP connection to <paramref name="port"/> (port rules only).</summary>
    public Decision AuthorizeConnection(PeerIdentityFeature peer, int port)
    {
        var current = config.Current;
        var decision = current is null ? Decision.NoConfig
            : current.IsRevoked(peer.Caller.Id) ? Decision.Revoked
            : current.Authorizer.EvaluateConnection(peer.Caller, port);
        Note(peer, "TCP", string.Create(System.Globalization.CultureInfo.InvariantCulture, $":{port}"), decision);
        return decision;
    }

    /// <summary>A request that broke <paramref name="rule"/> of the mesh's request rules: denied before any policy, recorded with its raw path.</summary>
    public Decision Refuse(PeerIdentityFeature peer, string method, string rawPath, string rule)
    {
        var decision = Decision.Malformed(rule);
        Note(peer, method, rawPath, decision);
        return decision;
    }

    private void Note(PeerIdentityFeature peer, string method, string path, in Decision decision)
    {
        decisions.Record(time.GetUtcNow(), peer.Caller.Id, method, path, decision);
        metrics.Count(decision);
        if (decision.IsAllowed)
        {
            return;
        }
        // The caller learns nothing about policies; the log names what decided.
        switch (decision.Reason)
        {
            case DecisionReason.NoConfig:
                LogNoConfig(logger, peer.Peer, method, path);
                break;
            case DecisionReason.MalformedRequest:
                LogMalformed(logger, peer.Peer, decision.Rule ?? "");
                break;
            default:
                LogDenied(logger, peer.Peer, method, path, decision.Policy ?? "(none)", decision.Rule ?? "(default deny)");
                break;
        }
    }

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "inbound: denied {Caller} {Method} {Path} by policy {Policy} rule {Rule}")]
    private static partial void LogDenied(ILogger logger, MeshGuard.Spiffe.SpiffeId caller, string method, string path, string policy, string rule);

    [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message = "inbound: denied {Caller} {Method} {Path}: no config snapshot in force yet")]
    private static partial void LogNoConfig(ILogger logger, MeshGuard.Spiffe.SpiffeId caller, string method, string path);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "inbound: refused a request from {Caller}: {Rule}")]
    private static partial void LogMalformed(ILogger logger, MeshGuard.Spiffe.SpiffeId caller, string rule);
}

/// <summary>What <see cref="InboundAuthorizer.Authorize"/> decided: permitted, with the proof the app leg requires, or denied.</summary>
internal readonly struct InboundVerdict
{
    private InboundVerdict(AuthorizedRequest? permit, in Decision decision)
    {
        Permit = permit;
        Decision = decision;
    }

    /// <summary>The proof, when the request is permitted; null when it is denied.</summary>
    public AuthorizedRequest? Permit { get; }

    public Decision Decision { get; }

    public static InboundVerdict Permitted(AuthorizedRequest permit) => new(permit, permit.Decision);

    public static InboundVerdict Denied(in Decision decision) => new(null, decision);
}
