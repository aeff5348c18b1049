using System.Net;
using System.Runtime.CompilerServices;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.FlowLog;
using MeshGuard.Proxy.Identity;
using MeshGuard.Proxy.Outbound.Resilience;
using MeshGuard.Proxy.Protocols;
using MeshGuard.Proxy.Routing;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http2;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.ObjectPool;
using Yarp.ReverseProxy.Forwarder;

namespace MeshGuard.Proxy.Outbound;

/// <summary>
/// The outbound listener's request handler: the app's plain HTTP (absolute-form through HTTP_PROXY, or by
/// Host) is resolved to a service, one of its endpoints is picked (least requests, open circuits skipped),
/// and the request goes out over mTLS to that endpoint's sidecar, which must present the identity the
/// directory lists for it. A failed try goes to another endpoint when that is safe: any request that never
/// left (no connection, wrong identity), and an idempotent request without a body after a reset, a per-try
/// timeout or a 502/503 answer; never a request whose body was sent. Retries are bounded by the attempts
/// setting and the retry budget.
/// </summary>
internal sealed partial class OutboundHandler(
    IHttpForwarder forwarder, SidecarConfigSource config, OutboundFlowRecorder recorder, OutboundResilience resilience, RetryBudget budget,
    OutboundMetrics metrics, ObjectPool<OutboundExchange> exchanges, TransparentOutbound transparent, ILogger<OutboundHandler> logger)
{
    private static readonly ForwarderRequestConfig RequestConfig = new()
    {
        Version = HttpVersion.Version20,
        VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        ActivityTimeout = TimeSpan.FromSeconds(100),
    };

    /// <summary>Kestrel's entry (HTTP/1.1 apps; every app while telemetry export is on): the pooled call wrapped in a Task unless it ended at once.</summary>
    public Task HandleAsync(HttpContext context) => Http2ServerEndpoint.AsKestrelTask(HandleRequestAsync(context));

    /// <summary>
    /// Checks and routes without awaiting anything, then hands the request to the one async step it needs: each async
    /// layer that waits for the answer is one more state machine allocated per request. The sidecar's own HTTP/2
    /// server (apps that speak h2c) awaits the value task itself, so its requests cost no Task.
    /// </summary>
    public ValueTask<bool> HandleRequestAsync(HttpContext context)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        // What the app brought, else made here as numbers: the hand-written leg writes them from there.
        var requestId = FlowFields.CallersRequestId(context.Request);
        var traceParent = FlowFields.CallersTraceParent(context.Request);
        var made = MadeIds.New(requestId is null, traceParent is null);
        if (made.Any)
        {
            // A malformed one the app sent is replaced, not sent beside the made one.
            FlowFields.RemoveReplaced(context.Request.Headers, made);
        }
        var host = context.Request.Host.Value;
        // The callee's sidecar would refuse it too; refusing here keeps the app's own mistake off the mesh.
        if (MeshGuard.Policy.Requests.RequestMethod.Check(context.Request.Method) != MeshGuard.Policy.Requests.MethodVerdict.Valid)
        {
            return Http2ServerEndpoint.Awaited(Refusal.WriteAsync(context, StatusCodes.Status400BadRequest, "meshguard: the method must be an RFC 9110 token, a standard one in upper case\n"));
        }
        if (string.IsNullOrEmpty(host))
        {
            return Http2ServerEndpoint.Awaited(Refusal.WriteAsync(context, StatusCodes.Status400BadRequest, "meshguard: request has no Host\n"));
        }
        // A port mapped to a service sends there whatever the Host; the HTTP proxy port routes by Host.
        var routes = config.Routes;
        var route = context.Features.Get<OutboundDestination>() is { } destination ? routes.Resolve(destination.Service) : routes.Resolve(host);
        if (route is null)
        {
            made.SetOn(context.Request.Headers);
            return Http2ServerEndpoint.Awaited(OutsideTheMeshAsync(context, started, requestId, traceParent, made, host));
        }
        budget.Deposit();
        var exchange = exchanges.Get();
        exchange.Start(IsRetryable(context), budget, made);
        context.Features.Set(exchange);
        return ForwardAsync(context, route, exchange, started, requestId, traceParent);
    }

    /// <summary>No service of the mesh has this Host: out of the mesh if the outbound policy lets it, else a 502.</summary>
    private async Task OutsideTheMeshAsync(HttpContext context, long started, string? requestId, string? traceParent, MadeIds made, string host)
    {
        if (await transparent.TryForwardOutsideAsync(context, started))
        {
            return;
        }
        LogUnknownService(logger, host);
        await Refusal.WriteAsync(context, StatusCodes.Status502BadGateway, "meshguard: no service in the mesh is called " + host + "\n");
        recorder.Exchange(context, started, requestId, traceParent, made, null, null);
    }

    /// <summary>Tries endpoints until one answers or no further try is allowed, then records the endpoint tried last (the result means nothing).</summary>
    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private async ValueTask<bool> ForwardAsync(HttpContext context, ServiceRoute route, OutboundExchange exchange, long started, string? requestId, string? traceParent)
    {
        try
        {
            MeshEndpoint? endpoint = null;
            var refusedByCircuit = 0;
            while (true)
            {
                var candidate = route.Pick(avoid: endpoint);
                if (candidate is null || refusedByCircuit > route.Endpoints.Length)
                {
                    metrics.NoAvailableEndpoint();
                    LogNoEndpoint(logger, route.Name);
                    await Refusal.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, "meshguard: no endpoint of " + route.Name + " is available (every circuit is open)\n");
                    break;
                }
                endpoint = candidate;
                if (!endpoint.Circuit.TryEnter(out var trial))
                {
                    // Its circuit is open or its one trial call is under way: nothing was sent, another endpoint may take it.
                    refusedByCircuit++;
                    continue;
                }
                TryOutcome outcome;
                exchange.BeginTry(resilience.PerTryTimeout, triesLeft: exchange.Tries + 1 < resilience.Attempts);
                try
                {
                    // The usual request is awaited here rather than through a method of its own: each async layer that
                    // waits for the answer is one more state machine box per request.
                    if (!GeneralForwarding.IsNeeded(context))
                    {
                        // The leg leaves out what only a sidecar may set as it writes the fields (MeshHeaders.IsForgeable);
                        // the server dropped what the app's Connection header named (HopByHopFields).
                        outcome = await MeshHttp2Leg.ForwardAsync(context, endpoint, exchange);
                    }
                    else
                    {
                        outcome = await ForwardGeneralAsync(context, endpoint, exchange);
                    }
                }
                catch (Exception e)
                {
                    endpoint.Circuit.Exit(trial, e);
                    if (e is OperationCanceledException)
                    {
                        break;
                    }
                    throw;
                }
                finally
                {
                    exchange.EndTry();
                }
                endpoint.Circuit.Exit(trial, outcome);
                if (outcome.MayRetry() && MayTryAgain(exchange, outcome))
                {
                    exchange.UseRetry();
                    metrics.Retry();
                    LogRetry(logger, route.Name, endpoint.Address, outcome, exchange.Tries + 1);
                    context.Response.Clear();
                    context.Features.Set<IForwarderErrorFeature>(null);
                    continue;
                }
                await AnswerFailureAsync(context, route, endpoint, exchange, outcome);
                break;
            }
            recorder.Exchange(context, started, requestId, traceParent, exchange.Ids, route, endpoint);
        }
        finally
        {
            context.Features.Set<OutboundExchange>(null);
            exchanges.Return(exchange);
        }
        return true;
    }

    /// <summary>Whether the request may go out again after this try (a held-back answer already has its retry).</summary>
    private bool MayTryAgain(OutboundExchange exchange, TryOutcome outcome)
    {
        if (exchange.RetryReserved)
        {
            return true;
        }
        return (exchange.Retryable || outcome.NothingSent()) && exchange.Tries < resilience.Attempts && budget.TryWithdraw();
    }

    /// <summary>A try through YARP: the rare paths (protocol switches, extended CONNECT, 100-continue).</summary>
    private async Task<TryOutcome> ForwardGeneralAsync(HttpContext context, MeshEndpoint endpoint, OutboundExchange exchange)
    {
        // YARP forwards the header collection itself: the made ids go there as text (again on a retry: the same values).
        exchange.Ids.SetOn(context.Request.Headers);
        var error = await forwarder.SendAsync(context, endpoint.DestinationPrefix, endpoint.Pool, RequestConfig, OutboundTransformer.Instance, exchange.TryToken);
        var outcome = Classify(context, exchange, error);
        if (context.GetForwarderErrorFeature()?.Exception is { } exception)
        {
            exchange.Fail(exception);
        }
        return outcome;
    }

    /// <summary>Drops what only a sidecar may set; the app's Host travels on. (What the app's Connection header named, the server dropped.)</summary>
    internal static void PrepareHeaders(HttpContext context) =>
        MeshGuard.Proxy.Transport.MeshHeaders.RemoveForgeable(context.Request.Headers, MeshGuard.Proxy.Transport.ForwardedHeaders.Keep);

    private static TryOutcome Classify(HttpContext context, OutboundExchange exchange, ForwarderError error)
    {
        if (exchange.Answered)
        {
            if (exchange.AnswerHeldBack)
            {
                return TryOutcome.AnswerHeldBack;
            }
            // YARP reports a request-body error even after the destination's whole answer was relayed.
            if (error is ForwarderError.None or ForwarderError.RequestBodyDestination or ForwarderError.RequestBodyCanceled or ForwarderError.RequestBodyClient)
            {
                return context.Response.StatusCode is StatusCodes.Status502BadGateway or StatusCodes.Status503ServiceUnavailable or StatusCodes.Status504GatewayTimeout
                    ? TryOutcome.RelayedFailure
                    : TryOutcome.Relayed;
            }
            return error is ForwarderError.ResponseBodyDestination or ForwarderError.UpgradeResponseDestination or ForwarderError.UpgradeRequestDestination
                ? TryOutcome.BrokenMidAnswer
                : TryOutcome.AppSide;
        }
        if (context.RequestAborted.IsCancellationRequested || error is ForwarderError.RequestBodyClient)
        {
            return TryOutcome.AppSide;
        }
        if (exchange.TimedOut || error is ForwarderError.RequestTimedOut)
        {
            return TryOutcome.TimedOut;
        }
        var exception = context.GetForwarderErrorFeature()?.Exception;
        if (FindIdentityError(exception) is not null)
        {
            return TryOutcome.WrongIdentity;
        }
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError })
            {
                return TryOutcome.ConnectFailed;
            }
        }
        return TryOutcome.Broken;
    }

    /// <summary>The sidecar's own answer when the last try brought none the app can have.</summary>
    private async Task AnswerFailureAsync(HttpContext context, ServiceRoute route, MeshEndpoint endpoint, OutboundExchange exchange, TryOutcome outcome)
    {
        switch (outcome)
        {
            case TryOutcome.Relayed or TryOutcome.RelayedFailure or TryOutcome.AppSide:
                return;
            case TryOutcome.BrokenMidAnswer:
                // The leg has aborted the exchange (YARP answers 502 if nothing was sent yet).
                LogForwardFailed(logger, route.Name, endpoint.Address, outcome.ToString(), exchange.Failure?.Message ?? "");
                return;
            case TryOutcome.WrongIdentity:
                var reason = FindIdentityError(exchange.Failure)?.Reason ?? "unexpected identity";
                LogWrongIdentity(logger, route.Name, endpoint.Address, reason);
                await Refusal.WriteAsync(context, StatusCodes.Status502BadGateway, "meshguard: endpoint " + endpoint.Address + " of " + route.Name + " refused: " + reason + "\n");
                return;
            case TryOutcome.TimedOut:
                LogForwardFailed(logger, route.Name, endpoint.Address, outcome.ToString(), "no answer within the per-try timeout");
                await Refusal.WriteAsync(context, StatusCodes.Status504GatewayTimeout, "meshguard: upstream " + route.Name + " timed out\n");
                return;
            default:
                LogForwardFailed(logger, route.Name, endpoint.Address, outcome.ToString(), exchange.Failure?.Message ?? "");
                await Refusal.WriteAsync(context, StatusCodes.Status502BadGateway, "meshguard: upstream " + route.Name + " failed: " + outcome + "\n");
                return;
        }
    }

    /// <summary>RFC 9110 9.2.2: methods whose repetition has the effect of one; and only without a body, which was streamed once.</summary>
    private static bool IsRetryable(HttpContext context)
    {
        var method = context.Request.Method;
        return (HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsTrace(method)
                || HttpMethods.IsPut(method) || HttpMethods.IsDelete(method))
            && context.Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false };
    }

    private static PeerIdentityException? FindIdentityError(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is PeerIdentityException identity)
            {
                return identity;
            }
        }
        return null;
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message = "outbound: no service for host {Host}")]
    private static partial void LogUnknownService(ILogger logger, string host);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "outbound: refused endpoint {Address} of service {Service}: {Reason}")]
    private static partial void LogWrongIdentity(ILogger logger, string service, string address, string reason);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "outbound: no endpoint of service {Service} is available: every circuit is open")]
    private static partial void LogNoEndpoint(ILogger logger, string service);

    [LoggerMessage(EventId = 204, Level = LogLevel.Information, Message = "outbound: {Outcome} at {Address} of service {Service}; try {Try} goes to another endpoint")]
    private static partial void LogRetry(ILogger logger, string service, string address, TryOutcome outcome, int @try);

    [LoggerMessage(EventId = 202, Level = LogLevel.Warning, Message = "outbound: forwarding to {Address} of service {Service} failed: {Error} {Detail}")]
    private static partial void LogForwardFailed(ILogger logger, string service, string address, string error, string detail);
}
