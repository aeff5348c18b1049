using System.Net;
using System.Text.Json;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>What the tests ask a running sidecar: its /config and /metrics, and an HTTP client that calls through its outbound port.</summary>
internal static class SidecarAdmin
{
    public static JsonElement Config(MeshService sidecar)
    {
        using var client = new HttpClient();
        using var json = JsonDocument.Parse(client.GetStringAsync(new Uri($"http://127.0.0.1:{sidecar.AdminPort}/config")).GetAwaiter().GetResult());
        return json.RootElement.Clone();
    }

    /// <summary>The sidecar's current SVID, chain and bundle, as /certs shows them.</summary>
    public static JsonElement Certs(MeshService sidecar)
    {
        using var client = new HttpClient();
        using var json = JsonDocument.Parse(client.GetStringAsync(new Uri($"http://127.0.0.1:{sidecar.AdminPort}/certs")).GetAwaiter().GetResult());
        return json.RootElement.Clone();
    }

    /// <summary>The newest inbound decision the sidecar took (its /decisions), or null when it has taken none.</summary>
    public static async Task<JsonElement?> LatestDecisionAsync(MeshService sidecar)
    {
        using var client = new HttpClient();
        using var json = JsonDocument.Parse(await client.GetStringAsync(new Uri($"http://127.0.0.1:{sidecar.AdminPort}/decisions?limit=1")));
        return json.RootElement.GetArrayLength() == 0 ? null : json.RootElement[0].Clone();
    }

    /// <summary>The serial number of the sidecar's current SVID: it changes at each renewal.</summary>
    public static string SvidSerial(MeshService sidecar) => Certs(sidecar).GetProperty("serial").GetString()!;

    /// <summary>The value of an unlabelled sample in Prometheus text; null when the metric is not there.</summary>
    public static long? MetricValue(string metrics, string name) =>
        System.Text.RegularExpressions.Regex.Match(metrics, "^" + System.Text.RegularExpressions.Regex.Escape(name) + @" (\d+)$", System.Text.RegularExpressions.RegexOptions.Multiline) is { Success: true } match
            ? long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)
            : null;

    /// <summary>The sidecar's Prometheus text, from its loopback metrics port.</summary>
    public static async Task<string> MetricsAsync(MeshService sidecar)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        return await client.GetStringAsync(new Uri($"http://127.0.0.1:{sidecar.MetricsPort}/metrics"));
    }

    /// <summary>Waits until the sidecar's service directory holds at least <paramref name="count"/> services.</summary>
    public static async Task WaitForServicesAsync(MeshService sidecar, int count) =>
        Assert.True(await Eventually.TrueAsync(() => Config(sidecar).GetProperty("services").GetInt32() >= count, TimeSpan.FromSeconds(30)),
            $"{sidecar.Name} never saw {count} services");

    /// <summary>A client whose requests go through <paramref name="caller"/>'s outbound port, as an app with HTTP_PROXY set.</summary>
    public static HttpClient ThroughOutbound(MeshService caller) =>
        new(new SocketsHttpHandler { Proxy = new WebProxy($"http://127.0.0.1:{caller.OutboundPort}"), UseProxy = true }) { Timeout = TimeSpan.FromSeconds(15) };

    /// <summary>
    /// A handler whose every connection goes to <paramref name="caller"/>'s outbound port whatever the URL names, as
    /// an app's connections do under transparent redirect: the URL's host travels as Host/:authority and routes.
    /// </summary>
    public static SocketsHttpHandler RedirectedToOutbound(MeshService caller) => new()
    {
        UseProxy = false,
        ConnectCallback = async (_, cancellation) =>
        {
            var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(IPAddress.Loopback, caller.OutboundPort, cancellation);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };
}
