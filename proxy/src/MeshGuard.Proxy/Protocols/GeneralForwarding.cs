using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.Proxy.Protocols;

/// <summary>
/// Which requests the sidecar's hand-written legs leave to YARP: protocol switches (WebSocket upgrades, extended
/// CONNECT), whose bytes stop being HTTP, and Expect: 100-continue, whose interim answer must come from the far end.
/// Both legs decide by this one rule, so a request takes the same kind of path on either side.
/// </summary>
internal static class GeneralForwarding
{
    public static bool IsNeeded(HttpContext context)
    {
        var request = context.Request;
        return request.Headers.Expect.Count > 0
            || HttpMethods.IsConnect(request.Method)
            || context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true };
    }
}
