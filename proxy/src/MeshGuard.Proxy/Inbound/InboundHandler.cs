using System.Net;
using System.Runtime.CompilerServices;
using MeshGuard.Policy.Engine;
using MeshGuard.Proxy.Limits;
using MeshGuard.Proxy.Protocols;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http2;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// The inbound listener's request handler. The caller already passed the mTLS handshake (an SVID of our
/// trust domain); its identity is on the connection. An authorized request goes to the local app through a leg
/// written by hand (<see cref="AppHttp1Leg"/>, <see cref="AppHttp2Leg"/>), or through YARP on the general path
/// (<see cref="AppInvokers"/>).
/// </summary>
internal sealed partial class InboundHandler(
    IHttpForwarder forwarder, AppHttp1Leg appLeg, AppHttp2Leg appHttp2Leg, InboundSettings settings, InboundAuthorizer authorizer, InboundFlowRecorder recorder, AppInvokers invokers, ILogger<InboundHandler> logger)
{
    private static readonly ForwarderRequestConfig Http1Config = new()
    {
        Version = HttpVersion.Version11,
        VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        ActivityTimeout = TimeSpan.FromSeconds(100),
    };

    // Cleartext HTTP/2 by prior knowledge: an exact version is what makes the handler skip HTTP/1.1 upgrade.
    private static readonly ForwarderRequestConfig Http2Config = new()
    {
        Version = HttpVersion.Version20,
        VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        ActivityTimeout = TimeSpan.FromSeconds(100),
    };

    private readonly bool _appPortOpaque = Array.IndexOf(settings.OpaquePorts, settings.AppPort) >= 0;

    private readonly InboundTransformer _transformer = new(settings.ForwardedHeaders);

    private readonly string _appPrefix = $"http://{(settings.AppAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{settings.AppAddress}]" : settings.AppAddress)}:{settings.AppPort}";

    /// <summary>
    /// Kestrel's entry (HTTP/1.1 peers; every peer while telemetry export is on): the server takes a Task, so the
    /// pooled call is handed over wrapped in a small one unless it ended at once.
    /// </summary>
    public Task HandleAsync(HttpContext context) => Http2ServerEndpoint.AsKestrelTask(HandleRequestAsync(context));

    /// <summary>
    /// Decides without awaiting anything, then hands the request to the one async step it needs: what that step
    /// holds across its awaits is all a request's state machine carries (pooled). The sidecar's own HTTP/2 server
    /// awaits the value task itself (the result means nothing), so its requests cost no Task.
    /// </summary>
    public ValueTask<bool> HandleRequestAsync(HttpContext context)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var peer = context.Features.Get<PeerIdentityFeature>();
        if (peer is null)
        {
            // Cannot happen through the TLS listener; refuse rather than forward an unauthenticated request.
            return Http2ServerEndpoint.Awaited(Refusal.WriteAsync(context, StatusCodes.Status403Forbidden, Forbidden));
        }
        if (context.RequestAborted.IsCancellationRequested)
        {
            // Cancelled by its peer before we looked at it (a reset that came with its headers): nothing is decided,
            // sent or recorded, only counted against the connection's allowance (a rapid-reset flood ends there).
            context.Features.Get<PrematureResetBudget>()?.StreamEnded(context, started);
            return new ValueTask<bool>(true);
        }
        // 1. The one view policy decides on and the app is sent, or a 400 naming the rule it broke. A port declared
        // opaque takes no HTTP (a port is one or the other, never both).
        var refusal = _appPortOpaque ? "port-is-opaque" : "";
        var request = default(CanonicalRequest);
        if (_appPortOpaque || !CanonicalRequest.TryRead(context, settings.PathNormalization, out request, out refusal))
        {
            var rawPath = CanonicalRequest.RawPath(context);
            var malformed = authorizer.Refuse(peer, context.Request.Method, rawPath, refusal);
            return RefuseAsync(context, StatusCodes.Status400BadRequest, "meshguard: bad request (" + refusal + ")\n", peer, started, malformed, context.Request.Method, rawPath);
        }
        // 2. Per request, against the table in force now.
        var verdict = authorizer.Authorize(peer, settings.AppPort, request, context.Request.Headers);
        if (verdict.Permit is not { } authorized)
        {
            return RefuseAsync(context, StatusCodes.Status403Forbidden, Forbidden, peer, started, verdict.Decision, request.Method, RecordedPath(request));
        }
        // 3. The proof the app leg requires: it sends exactly this view.
        var config = AppLegConfig(context.Request);
        return GeneralForwarding.IsNeeded(context)
            ? ForwardGeneralAsync(context, peer, started, authorized, config)
            : ForwardToAppAsync(context, peer, started, authorized, http2: ReferenceEquals(config, Http2Config));
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private async ValueTask<bool> RefuseAsync(HttpContext context, int status, string text, PeerIdentityFeature peer, long started, Decision decision, string method, string path)
    {
        await Refusal.WriteAsync(context, status, text);
        Ended(context, peer, started, decision, method, path);
        return true;
    }

    /// <summary>The usual path: the authorized request over a hand-written leg, HTTP/1.1 or HTTP/2 as the app speaks. Its state machine is pooled.</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ForwardToAppAsync(HttpContext context, PeerIdentityFeature peer, long started, AuthorizedRequest authorized, bool http2)
    {
        // The legs leave out what only a sidecar may set as they write the head (MeshHeaders.IsForgeable).
        var outcome = http2
            ? await appHttp2Leg.ForwardAsync(context, authorized, peer.Peer.ToString(), peer.ForwardedClientCert, settings.ForwardedHeaders)
            : await appLeg.ForwardAsync(context, authorized, peer.ForwardedClientCert, settings.ForwardedHeaders);
        if (outcome is not (AppLegOutcome.Relayed or AppLegOutcome.CallerGone))
        {
            await AnswerAppLegFailureAsync(context, outcome, http2);
        }
        Ended(context, peer, started, authorized.Decision, authorized.Request.Method, RecordedPath(authorized.Request));
        return true;
    }

    /// <summary>The rare paths (protocol switches, 100-continue) through YARP.</summary>
    private async ValueTask<bool> ForwardGeneralAsync(HttpContext context, PeerIdentityFeature peer, long started, AuthorizedRequest authorized, ForwarderRequestConfig config)
    {
        authorized.SetOn(context);
        // To an HTTP/2 app, each calling identity on connections of its own (AppInvokers).
        var invoker = ReferenceEquals(config, Http2Config) ? invokers.For(peer.Peer.ToString()) : invokers.Shared;
        var error = await forwarder.SendAsync(context, _appPrefix, invoker, config, _transformer);
        if (error != ForwarderError.None)
        {
            var exception = context.GetForwarderErrorFeature()?.Exception;
            LogAppFailed(logger, error.ToString(), exception?.Message ?? "");
            if (error == ForwarderError.Request && exception is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError })
            {
                // Nothing listens at the app's port (it is down or restarting): 503, as Envoy answers, so that the
                // caller's sidecar counts this endpoint as unavailable and may try another one.
                await Refusal.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, AppUnreachableText);
            }
        }
        Ended(context, peer, started, authorized.Decision, authorized.Request.Method, RecordedPath(authorized.Request));
        return true;
    }

    /// <summary>Every exchange ends here: its flow record, and its count on the connection's reset allowance.</summary>
    private void Ended(HttpContext context, PeerIdentityFeature peer, long started, in Decision decision, string method, string path)
    {
        recorder.Exchange(context, peer, started, decision, method, path);
        context.Features.Get<PrematureResetBudget>()?.StreamEnded(context, started);
    }

    /// <summary>An app leg failed: the caller learns it as a status, or as a cut stream once the answer began.</summary>
    private async Task AnswerAppLegFailureAsync(HttpContext context, AppLegOutcome outcome, bool http2)
    {
        if (context.Response.HasStarted)
        {
            // Part of the answer is on its way: cutting the stream is the only honest signal left.
            context.Abort();
            return;
        }
        context.Response.Headers.Clear();
        switch (outcome)
        {
            case AppLegOutcome.AppUnreachable:
                LogAppFailed(logger, "ConnectionError", "nothing listens at the app's port");
                await Refusal.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, AppUnreachableText);
                return;
            case AppLegOutcome.UnsendableHeader:
                await Refusal.WriteAsync(context, StatusCodes.Status400BadRequest, http2 ? "meshguard: a header cannot be sent as HTTP/2\n" : "meshguard: a header cannot be sent as HTTP/1.1\n");
                return;
            default:
                await Refusal.WriteAsync(context, StatusCodes.Status502BadGateway, http2 ? "meshguard: the app gave no valid HTTP/2 answer\n" : "meshguard: the app's answer was not valid HTTP/1.1\n");
                return;
        }
    }

    /// <summary>The path as recorded: the canonical one, with its query only if the operator asked to keep it.</summary>
    private string RecordedPath(in CanonicalRequest request) =>
        recorder.KeepQuery && !request.Target.Query.IsEmpty ? string.Concat(request.Path, request.Target.Query) : request.Path;

    /// <summary>The app hears the version its caller spoke, unless the operator fixed one.</summary>
    private ForwarderRequestConfig AppLegConfig(HttpRequest request) => settings.AppProtocol switch
    {
        AppProtocol.Http1 => Http1Config,
        AppProtocol.Http2 => Http2Config,
        _ => request.Headers.ContainsKey(MeshHeaders.OriginalProtocol) ? Http2Config : Http1Config,
    };

    private const string Forbidden = "forbidden\n";

    /// <summary>Either leg's answer when nothing listens at the app's port.</summary>
    private const string AppUnreachableText = "meshguard: the app is not reachable\n";

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "inbound: forwarding to the app failed: {Error} {Detail}")]
    private static partial void LogAppFailed(ILogger logger, string error, string detail);
}
