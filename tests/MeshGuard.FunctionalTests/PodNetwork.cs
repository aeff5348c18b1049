using System.Globalization;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Pods made of real network namespaces: a "node" namespace holding a bridge, and one namespace per pod joined
/// to it by a veth pair, each with its own loopback and ports (so sidecars bind their usual 15001 and 15006) and
/// its own nat table (so a pod's redirect rules apply to that pod alone). The addresses exist only inside these
/// namespaces. Needs root; the namespaces are deleted on dispose.
/// </summary>
internal sealed class PodNetwork : IAsyncDisposable
{
    public const string NodeAddress = "10.77.0.254";

    private static int s_created;
    private readonly string _prefix = $"mg{Environment.ProcessId % 100000}x{Interlocked.Increment(ref s_created)}";
    private readonly List<string> _namespaces = [];

    public string Node => _prefix + "-node";

    public const string NodeAddress6 = "fd77::fe";

    public static string AddressOf(int pod) => "10.77.0." + pod.ToString(CultureInfo.InvariantCulture);

    /// <summary>The pod's IPv6 address: every pod is dual-stack, as a cluster with IPv6 enabled makes it.</summary>
    public static string Address6Of(int pod) => "fd77::" + pod.ToString(CultureInfo.InvariantCulture);

    /// <summary>Creates the node namespace; fails (never skips) where the kernel or the user may not.</summary>
    public static async Task<PodNetwork> CreateAsync()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            throw new InvalidOperationException("the transparent-redirect tests create network namespaces and need root; run ./meshguard.sh test as root");
        }
        var network = new PodNetwork();
        await network.AddNamespaceAsync(network.Node);
        await network.IpAsync("-n", network.Node, "link", "add", "mg0", "type", "bridge");
        await network.IpAsync("-n", network.Node, "addr", "add", NodeAddress + "/24", "dev", "mg0");
        await network.IpAsync("-n", network.Node, "addr", "add", NodeAddress6 + "/64", "dev", "mg0", "nodad");
        await network.IpAsync("-n", network.Node, "link", "set", "mg0", "up");
        return network;
    }

    /// <summary>A pod namespace with eth0 at <see cref="AddressOf"/>(<paramref name="index"/>), bridged to the node.</summary>
    public async Task<string> AddPodAsync(string name, int index)
    {
        var ns = $"{_prefix}-{name}";
        await AddNamespaceAsync(ns);
        var hostSide = $"v{index.ToString(CultureInfo.InvariantCulture)}";
        await IpAsync("-n", Node, "link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", ns);
        await IpAsync("-n", Node, "link", "set", hostSide, "master", "mg0", "up");
        await IpAsync("-n", ns, "addr", "add", AddressOf(index) + "/24", "dev", "eth0");
        await IpAsync("-n", ns, "addr", "add", Address6Of(index) + "/64", "dev", "eth0", "nodad");
        await IpAsync("-n", ns, "link", "set", "eth0", "up");
        return ns;
    }

    /// <summary>The launcher that runs a program inside <paramref name="ns"/>, as <paramref name="uid"/> if given.</summary>
    public static IReadOnlyList<string> In(string ns, int? uid = null)
    {
        List<string> launcher = ["ip", "netns", "exec", ns];
        if (uid is { } id)
        {
            var text = id.ToString(CultureInfo.InvariantCulture);
            launcher.AddRange(["setpriv", "--reuid", text, "--regid", text, "--clear-groups"]);
        }
        return launcher;
    }

    /// <summary>Runs a program inside <paramref name="ns"/> to completion.</summary>
    public static Task<(int ExitCode, string Output)> RunAsync(string ns, int? uid, string program, params string[] arguments)
    {
        var launcher = In(ns, uid);
        return ExternalProcess.RunAsync(launcher[0], [.. launcher.Skip(1), program, .. arguments], timeout: TimeSpan.FromSeconds(30));
    }

    /// <summary>curl inside a pod: the HTTP status (0 when no HTTP answer came) and the body.</summary>
    public static async Task<(int Status, string Body)> CurlAsync(string ns, int? uid, params string[] arguments)
    {
        const string Marker = "\nmeshguard-test-status=";
        var (_, output) = await RunAsync(ns, uid, "curl", ["-sS", "-m", "5", "-w", Marker + "%{http_code}\n", .. arguments]);
        var at = output.IndexOf(Marker, StringComparison.Ordinal);
        if (at < 0)
        {
            return (0, output);
        }
        var status = int.Parse(output.AsSpan(at + Marker.Length, 3), CultureInfo.InvariantCulture);
        return (status, output[..at]);
    }

    private async Task AddNamespaceAsync(string ns)
    {
        await IpAsync("netns", "add", ns);
        _namespaces.Add(ns);
        await IpAsync("-n", ns, "link", "set", "lo", "up");
    }

    private async Task IpAsync(params string[] arguments)
    {
        var (exit, output) = await ExternalProcess.RunAsync("ip", arguments);
        if (exit != 0)
        {
            throw new InvalidOperationException($"the kernel refused 'ip {string.Join(' ', arguments)}' (exit {exit}): {output.Trim()}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var ns in Enumerable.Reverse(_namespaces))
        {
            await ExternalProcess.RunAsync("ip", ["netns", "del", ns]);
        }
    }
}
