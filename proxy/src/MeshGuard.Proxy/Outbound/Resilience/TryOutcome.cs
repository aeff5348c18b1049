namespace MeshGuard.Proxy.Outbound.Resilience;

/// <summary>How one try of a request at one endpoint ended.</summary>
internal enum TryOutcome
{
    /// <summary>The endpoint's answer went to the app (whatever its status, unless one of the next two).</summary>
    Relayed,

    /// <summary>A 502, 503 or 504 answer went to the app: relayed, and counted against the endpoint.</summary>
    RelayedFailure,

    /// <summary>A 502 or 503 answer was held back so that the request can be tried again elsewhere.</summary>
    AnswerHeldBack,

    /// <summary>No connection: refused, unreachable, or the handshake failed. Nothing of the request was sent.</summary>
    ConnectFailed,

    /// <summary>The endpoint presented another identity than the directory lists. Nothing of the request was sent.</summary>
    WrongIdentity,

    /// <summary>The exchange broke before an answer (reset, protocol error): the request may have reached the app.</summary>
    Broken,

    /// <summary>No answer within the per-try timeout.</summary>
    TimedOut,

    /// <summary>The endpoint broke while its answer was being relayed.</summary>
    BrokenMidAnswer,

    /// <summary>The app went away or its side of the exchange failed: nothing to say about the endpoint.</summary>
    AppSide,
}

internal static class TryOutcomes
{
    /// <summary>Counted by the endpoint's circuit breaker.</summary>
    public static bool IsEndpointFailure(this TryOutcome outcome) => outcome is not (TryOutcome.Relayed or TryOutcome.AppSide);

    /// <summary>Nothing reached the endpoint's app, so any request, POST included, may go elsewhere.</summary>
    public static bool NothingSent(this TryOutcome outcome) => outcome is TryOutcome.ConnectFailed or TryOutcome.WrongIdentity;

    /// <summary>Another try may follow (if the request allows it and the budget has a retry).</summary>
    public static bool MayRetry(this TryOutcome outcome) =>
        outcome is TryOutcome.AnswerHeldBack or TryOutcome.ConnectFailed or TryOutcome.WrongIdentity or TryOutcome.Broken or TryOutcome.TimedOut;
}
