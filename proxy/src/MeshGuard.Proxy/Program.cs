using System.CommandLine;
using System.Net;
using MeshGuard.CommandLine;
using MeshGuard.Proxy;
using MeshGuard.Proxy.Transport;
using MeshGuard.Spiffe;

// Before any socket: see SocketCompletions.
SocketCompletions.RunInlineUnlessConfigured();
// Before anything can build a certificate chain: see SystemTrustStore.
MeshGuard.Proxy.Identity.SystemTrustStore.KeepOutUnlessNeeded();

var cp = CliOption.Text("--cp", "control plane bootstrap URL, or several replicas' (comma-separated; tried in turn)", "https://127.0.0.1:15012");
var cpGrpc = CliOption.Text("--cp-grpc", "control plane gRPC (mTLS) URL, or several; default: the port each --cp replica names at /v1/bootstrap, on its host");
var cpBundle = CliOption.Text("--cp-bundle", "PEM trust bundle to check the control plane with");
var joinToken = CliOption.Text("--join-token", "one-time join token (meshctl token create)");
var saTokenFile = CliOption.Text("--sa-token-file", "in a cluster: the projected service-account token (audience meshguard) to attest with when there is no join token");
var service = CliOption.Text("--service", "name of the service this sidecar fronts");
var appAddress = CliOption.Text("--app-address", "address of the local app", "127.0.0.1");
var appPort = CliOption.Port("--app-port", "port of the local app", 8080);
var appProtocol = CliOption.Text("--app-protocol", "HTTP version spoken to the local app: auto (the caller's own: HTTP/2 and gRPC callers over cleartext HTTP/2), http1 or http2", "auto");
var inboundAddress = CliOption.Text("--inbound-address", "address of the inbound (mTLS) listener", "127.0.0.1");
var inboundPort = CliOption.Port("--inbound-port", "inbound (mTLS) port", 15006);
var outboundPort = CliOption.Port("--outbound-port", "outbound port on 127.0.0.1 for the app's plain HTTP", 15001);
var adminPort = CliOption.Port("--admin-port", "admin port on 127.0.0.1", 15000);
var metricsPort = CliOption.Port("--metrics-port", "Prometheus /metrics port on 127.0.0.1", 15020);
var advertise = CliOption.Text("--advertise-address", "ip:port other sidecars reach the inbound listener at; default inbound address:port");
var opaquePorts = CliOption.Text("--opaque-ports", "app ports reached as opaque TCP, authorized per connection (comma-separated)");
var outboundTcp = CliOption.Text("--outbound-tcp", "LOCALPORT=service:port[/opaque],...: listeners on 127.0.0.1 for a service's port; HTTP/1.1 and HTTP/2 are detected and carried as HTTP, anything else as opaque TCP (/opaque: no detection, for protocols whose server speaks first)");
var detectTimeout = CliOption.Port("--protocol-detect-timeout", "seconds a new connection from the app may take to show its protocol before it is taken as opaque", 10);
var maxConnections = CliOption.Port("--max-connections", "open connections each data listener (inbound; outbound) holds at most; more are closed at once and counted", MeshGuard.Proxy.Limits.ListenerLimits.DefaultMaxConnections);
var headersTimeout = CliOption.Port("--request-headers-timeout", "seconds a request's headers may take to arrive before the connection is closed", MeshGuard.Proxy.Limits.ListenerLimits.DefaultRequestHeadersTimeoutSeconds);
var retryAttempts = CliOption.Port("--retry-attempts", "tries per outbound request, the first included (1: no retries); only requests that never left, or idempotent ones without a body, are tried again", MeshGuard.Proxy.Outbound.Resilience.OutboundResilience.DefaultAttempts);
var perTryTimeout = CliOption.Text("--per-try-timeout", "how long one try of a retryable outbound request waits for response headers before another endpoint gets it (default 0: no limit)", $"{MeshGuard.Proxy.Outbound.Resilience.OutboundResilience.DefaultPerTryTimeoutSeconds}s");
var retryBudgetPercent = CliOption.Port("--retry-budget-percent", "retries may add at most this share to the requests sent", MeshGuard.Proxy.Outbound.Resilience.OutboundResilience.DefaultRetryBudgetPercent);
var retryBudgetMin = CliOption.Port("--retry-budget-min-per-second", "retries allowed each second whatever the request rate", MeshGuard.Proxy.Outbound.Resilience.OutboundResilience.DefaultRetryBudgetMinPerSecond);
var ejectAfter = CliOption.Port("--eject-after-failures", "failed tries in a row that eject an endpoint from balancing (passive health)", MeshGuard.Proxy.Outbound.Resilience.OutboundResilience.DefaultConsecutiveFailuresToEject);
var circuitFailurePercent = CliOption.Port("--circuit-failure-percent", "share of an endpoint's failed tries over 10s that opens its circuit (ejects it)", MeshGuard.Proxy.Outbound.Resilience.OutboundResilience.DefaultCircuitFailurePercent);
var circuitMinRequests = CliOption.Port("--circuit-min-requests", "tries an endpoint must have seen in the window before its circuit may open", MeshGuard.Proxy.Outbound.Resilience.OutboundResilience.DefaultCircuitMinimumThroughput);
var circuitBreak = CliOption.Duration("--circuit-break", "how long an ejected endpoint (or one whose circuit opened) stays out before it is tried again; each failure in a row after that adds as much again (at most 60s)", TimeSpan.FromSeconds(MeshGuard.Proxy.Outbound.Resilience.OutboundResilience.DefaultCircuitBreakSeconds));
var flowLogDir = CliOption.Text("--flow-log-dir", "flow log directory (hash-chained JSON Lines); default <state-dir>/flows, off without either");
var flowLogQuery = CliOption.Flag("--flow-log-query", "keep the query string in recorded paths");
var flowLogQueue = CliOption.Port("--flow-log-queue", "records the flow log queue holds before it counts losses", 10000);
var flowLogRetain = CliOption.Port("--flow-log-retain", "flow log files kept (rotation by size)", 10);
var flowLogMaxMb = CliOption.Port("--flow-log-max-mb", "size of one flow log file before it rotates", 10);
var outboundTrafficPolicy = CliOption.Text("--outbound-traffic-policy", "what a redirected connection to an address outside the mesh gets: allow-any (passed through as plain TCP and recorded, as Istio's default) or registry-only (closed)", "allow-any");
var pathNormalization = CliOption.Text("--path-normalization", "how inbound paths are made canonical before policy and app see them: escaped-slashes=reject|keep|decode, merge-slashes=true|false, path-parameters=reject|keep|strip (comma-separated)", MeshGuard.Policy.Requests.PathNormalization.Default.ToString());
var forwardedHeaders = CliOption.Text("--forwarded-headers", "Forwarded, X-Forwarded-For/-Host/-Proto and X-Real-IP from peers: remove (the verified caller is in x-forwarded-client-cert) or keep", "remove");
var stateDir = CliOption.Text("--state-dir", "where the SVID (key 0600) and the last good config snapshot are kept, for restarts while the control plane is away");

var root = new RootCommand("meshguard-proxy: the MeshGuard sidecar (mTLS with SPIFFE identities between services)")
{
    cp, cpGrpc, cpBundle, joinToken, service, appAddress, appPort, appProtocol, inboundAddress, inboundPort, outboundPort, adminPort, metricsPort, advertise, stateDir, opaquePorts, outboundTcp, detectTimeout, maxConnections, headersTimeout, retryAttempts, perTryTimeout, retryBudgetPercent, retryBudgetMin, ejectAfter, circuitFailurePercent, circuitMinRequests, circuitBreak, flowLogDir, flowLogQuery, flowLogQueue, flowLogRetain, flowLogMaxMb, outboundTrafficPolicy, saTokenFile, pathNormalization, forwardedHeaders,
};
root.Subcommands.Add(MeshGuard.Proxy.Redirect.RedirectCommand.Create());
root.SetAction(async (parse, cancellation) =>
{
    try
    {
        var bootstrap = ParseUris(parse.GetValue(cp)!, "--cp");
        // None given: asked of each --cp replica once the sidecar starts.
        var grpc = parse.GetValue(cpGrpc) is { Length: > 0 } g ? ParseUris(g, "--cp-grpc") : [];
        var inboundIp = ParseAddress(parse.GetValue(inboundAddress)!, "--inbound-address");
        var state = parse.GetValue(stateDir) is { Length: > 0 } dir ? Path.GetFullPath(dir) : null;
        var flows = parse.GetValue(flowLogDir) is { Length: > 0 } f ? Path.GetFullPath(f) : state is null ? null : Path.Combine(state, "flows");
        var settings = new ProxySettings(
            bootstrap,
            grpc,
            CliOption.Required(parse, cpBundle),
            parse.GetValue(joinToken),
            CliOption.Required(parse, service),
            ParseAddress(parse.GetValue(appAddress)!, "--app-address"),
            parse.GetValue(appPort),
            ParseAppProtocol(parse.GetValue(appProtocol)!),
            inboundIp,
            parse.GetValue(inboundPort),
            parse.GetValue(outboundPort),
            parse.GetValue(adminPort),
            parse.GetValue(metricsPort),
            parse.GetValue(advertise) is { Length: > 0 } a ? a : new IPEndPoint(inboundIp, parse.GetValue(inboundPort)).ToString(),
            state,
            PortList.Parse(parse.GetValue(opaquePorts), "--opaque-ports"),
            ParseMappings(parse.GetValue(outboundTcp)),
            TimeSpan.FromSeconds(Math.Max(1, parse.GetValue(detectTimeout))),
            new MeshGuard.Proxy.Limits.ListenerLimits(Math.Max(1, parse.GetValue(maxConnections)), TimeSpan.FromSeconds(Math.Max(1, parse.GetValue(headersTimeout)))),
            ParseResilience(parse),
            new MeshGuard.Proxy.FlowLog.FlowLogSettings(
                flows, Math.Max(1, parse.GetValue(flowLogQueue)), Math.Max(1, parse.GetValue(flowLogMaxMb)) * 1024L * 1024L,
                Math.Max(1, parse.GetValue(flowLogRetain)), parse.GetValue(flowLogQuery)),
            parse.GetValue(outboundTrafficPolicy) switch
            {
                "allow-any" => true,
                "registry-only" => false,
                var other => throw new CliUsageException($"--outbound-traffic-policy '{other}' must be allow-any or registry-only"),
            },
            parse.GetValue(saTokenFile) is { Length: > 0 } tokenFile ? Path.GetFullPath(tokenFile) : null,
            MeshGuard.Policy.Requests.PathNormalization.TryParse(parse.GetValue(pathNormalization)!, out var pathRules, out var pathError)
                ? pathRules
                : throw new CliUsageException($"--path-normalization {pathError}"),
            parse.GetValue(forwardedHeaders) switch
            {
                "remove" => MeshGuard.Proxy.Transport.ForwardedHeaders.Remove,
                "keep" => MeshGuard.Proxy.Transport.ForwardedHeaders.Keep,
                var other => throw new CliUsageException($"--forwarded-headers '{other}' must be remove or keep"),
            });
        return await SidecarHost.RunAsync(settings, cancellation);
    }
    catch (CliUsageException e)
    {
        await Console.Error.WriteLineAsync($"meshguard-proxy: {e.Message}");
        return 2;
    }
    catch (Exception e) when (e is FormatException or StartupException or IOException)
    {
        await Console.Error.WriteLineAsync($"meshguard-proxy: {e.Message}");
        return 1;
    }
});
// The host handles SIGTERM and SIGINT itself and shuts down gracefully, exiting 0.
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });

MeshGuard.Proxy.Outbound.Resilience.OutboundResilience ParseResilience(System.CommandLine.ParseResult parse)
{
    var defaults = MeshGuard.Proxy.Outbound.Resilience.OutboundResilience.Default;
    var failurePercent = parse.GetValue(circuitFailurePercent);
    if (failurePercent is < 1 or > 100)
    {
        throw new CliUsageException($"--circuit-failure-percent {failurePercent} must be between 1 and 100");
    }
    var breakFor = parse.GetValue(circuitBreak);
    return defaults with
    {
        Attempts = Math.Max(1, parse.GetValue(retryAttempts)),
        PerTryTimeout = parse.GetValue(perTryTimeout) is "0" or "0s" or "off"
            ? TimeSpan.Zero
            : Durations.TryParse(parse.GetValue(perTryTimeout)!, out var perTry) ? perTry : throw new CliUsageException($"--per-try-timeout '{parse.GetValue(perTryTimeout)}' is not a duration (examples: 500ms, 15s) or 0"),
        RetryBudgetRatio = parse.GetValue(retryBudgetPercent) / 100.0,
        RetryBudgetMinPerSecond = parse.GetValue(retryBudgetMin),
        ConsecutiveFailuresToEject = Math.Max(1, parse.GetValue(ejectAfter)),
        CircuitFailureRatio = failurePercent / 100.0,
        CircuitMinimumThroughput = Math.Max(2, parse.GetValue(circuitMinRequests)),
        CircuitBreakDuration = breakFor < TimeSpan.FromMilliseconds(500) ? TimeSpan.FromMilliseconds(500) : breakFor,
    };
}

static List<Uri> ParseUris(string value, string flag)
{
    var uris = new List<Uri>();
    foreach (var part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
    {
        uris.Add(Uri.TryCreate(part, UriKind.Absolute, out var uri) && uri.Scheme == "https"
            ? uri
            : throw new CliUsageException($"{flag} '{part}' must be an https:// URL"));
    }
    return uris.Count > 0 ? uris : throw new CliUsageException($"{flag} names no URL");
}

static List<MeshGuard.Proxy.Outbound.OutboundTcpMapping> ParseMappings(string? text)
{
    var mappings = new List<MeshGuard.Proxy.Outbound.OutboundTcpMapping>();
    foreach (var part in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
    {
        mappings.Add(MeshGuard.Proxy.Outbound.OutboundTcpMapping.TryParse(part, out var mapping, out var error) ? mapping! : throw new CliUsageException(error!));
    }
    return mappings;
}

static MeshGuard.Proxy.Protocols.AppProtocol ParseAppProtocol(string value) => value switch
{
    "auto" => MeshGuard.Proxy.Protocols.AppProtocol.Auto,
    "http1" => MeshGuard.Proxy.Protocols.AppProtocol.Http1,
    "http2" => MeshGuard.Proxy.Protocols.AppProtocol.Http2,
    _ => throw new CliUsageException($"--app-protocol '{value}' must be auto, http1 or http2"),
};

static IPAddress ParseAddress(string value, string flag) =>
    IPAddress.TryParse(value, out var address) ? address : throw new CliUsageException($"{flag} '{value}' is not an IP address");
