using System.Net;
using System.Net.Sockets;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.Inbound;
using MeshGuard.Proxy.Protocols;
using MeshGuard.Proxy.Redirect;
using MeshGuard.Proxy.Routing;
using MeshGuard.Proxy.Transport;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Yarp.ReverseProxy.Forwarder;

namespace MeshGuard.Proxy.Outbound;

/// <summary>A connection the pod's nat rules sent to the outbound port: where it was headed, and the mesh service there if any.</summary>
internal sealed record RedirectedConnection(IPEndPoint Original, ServiceRoute? Route);

/// <summary>
/// Connections that the pod's nat rules (<c>redirect install</c>) sent to the outbound port. The original
/// destination is read once per connection. An address where a mesh service has an endpoint (a pod IP) routes
/// the connection to that service: HTTP as HTTP whatever its Host says, other bytes as opaque TCP to the
/// original port. Otherwise HTTP is routed by its Host (Kubernetes names included, so a call to a Service's
/// cluster IP by name stays in the mesh), and what names no mesh service leaves the mesh as it came, as Istio's
/// ALLOW_ANY and Linkerd do: recorded in the flow log with its address. With <c>--outbound-traffic-policy
/// registry-only</c> such traffic is refused instead. A connection made to the outbound port itself (the app
/// using it as its HTTP proxy) is not redirected and is left alone.
/// </summary>
internal sealed partial class TransparentOutbound(
    SidecarConfigSource config, TransparentOutboundSettings settings, OpaqueTcpOutbound opaqueTcp, IHttpForwarder forwarder,
    [FromKeyedServices(AppInvokers.SharedKey)] HttpMessageInvoker plainHttp,
    OutboundFlowRecorder recorder, ILogger<TransparentOutbound> logger)
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The policy name of flow records for traffic that left the mesh.</summary>
    public const string PolicyName = "outbound-traffic-policy";

    private static readonly ForwarderRequestConfig PlainRequest = new()
    {
        Version = HttpVersion.Version11,
        VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        ActivityTimeout = TimeSpan.FromSeconds(100),
    };

    /// <summary>Marks a redirected connection with its original destination; never takes the connection itself.</summary>
    public ValueTask<bool> InterceptAsync(ConnectionContext connection)
    {
        if (connection.Features.Get<IConnectionSocketFeature>()?.Socket is { } socket
            && OriginalDestination.Read(socket) is { } original
            && !original.Equals(connection.LocalEndPoint))
        {
            var route = config.Routes.ResolveAddress(original.Address);
            connection.Features.Set(new RedirectedConnection(original, route));
            if (route is not null)
            {
                connection.Features.Set(new OutboundDestination(new OutboundTcpMapping(settings.OutboundPort, route.QualifiedName, original.Port)));
            }
        }
        return ValueTask.FromResult(false);
    }

    /// <summary>Bytes that are not HTTP on a redirected connection: to the mesh service at the address, or out of the mesh.</summary>
    public Task HandleOpaqueAsync(ConnectionContext connection)
    {
        var redirected = connection.Features.Get<RedirectedConnection>()!;
        if (connection.Features.Get<OutboundDestination>() is { } destination)
        {
            return opaqueTcp.HandleAsync(connection, destination.Mapping);
        }
        if (!settings.Passthrough)
        {
            LogRefused(logger, redirected.Original);
            connection.Abort();
            return Task.CompletedTask;
        }
        return PassThroughAsync(connection, redirected.Original);
    }

    /// <summary>
    /// HTTP on a redirected connection whose Host names no mesh service: forwarded in plaintext to where it was
    /// headed, or refused under registry-only. False when the connection was not redirected (the caller answers).
    /// </summary>
    public async ValueTask<bool> TryForwardOutsideAsync(HttpContext context, long started)
    {
        if (context.Features.Get<RedirectedConnection>() is not { } redirected)
        {
            return false;
        }
        if (!settings.Passthrough)
        {
            LogRefused(logger, redirected.Original);
            await Refusal.WriteAsync(context, StatusCodes.Status502BadGateway, "meshguard: " + redirected.Original + " is outside the mesh and the outbound traffic policy is registry-only\n");
            recorder.PassedOut(context, redirected.Original, started, "deny", "registry-only");
            return true;
        }
        var error = await forwarder.SendAsync(context, "http://" + redirected.Original, plainHttp, PlainRequest, HttpTransformer.Empty);
        if (error != ForwarderError.None)
        {
            LogPassthroughFailed(logger, redirected.Original, error.ToString());
        }
        recorder.PassedOut(context, redirected.Original, started, "allow", "allow-any");
        return true;
    }

    private async Task PassThroughAsync(ConnectionContext connection, IPEndPoint original)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        using var upstream = new Socket(original.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using (var limit = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed))
        {
            limit.CancelAfter(ConnectTimeout);
            try
            {
                await upstream.ConnectAsync(original, limit.Token);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                LogPassthroughFailed(logger, original, e.Message);
                connection.Abort();
                recorder.PassedOut(original, started, 0, 0, "allow", "allow-any");
                return;
            }
        }
        await using var app = new DuplexStream(connection.Transport);
        await using var peer = new NetworkStream(upstream, ownsSocket: false);
        var (fromApp, fromPeer) = await OpaqueTcp.PipeAsync(app, peer, connection.ConnectionClosed);
        recorder.PassedOut(original, started, fromApp, fromPeer, "allow", "allow-any");
    }

    [LoggerMessage(EventId = 220, Level = LogLevel.Warning, Message = "outbound: {Destination} is outside the mesh and the traffic policy is registry-only; refused")]
    private static partial void LogRefused(ILogger logger, IPEndPoint destination);

    [LoggerMessage(EventId = 221, Level = LogLevel.Warning, Message = "outbound passthrough to {Destination} failed: {Reason}")]
    private static partial void LogPassthroughFailed(ILogger logger, IPEndPoint destination, string reason);
}
