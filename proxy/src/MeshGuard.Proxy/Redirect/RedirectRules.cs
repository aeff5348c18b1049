using System.Globalization;
using System.Text;

namespace MeshGuard.Proxy.Redirect;

/// <summary>
/// The pod's nat rules that carry all of its TCP through the sidecar, as istio-init writes them: connections
/// arriving from outside go to the inbound (mTLS) port, connections the app opens go to the outbound port.
/// The sidecar's own uid is left alone (its mTLS to peers and the control plane must leave the pod), and so
/// is the app's traffic to loopback. The same rules go to iptables and ip6tables: in a dual-stack pod, plaintext
/// IPv6 to the app's port would otherwise pass around the sidecar.
/// </summary>
internal sealed record RedirectRules(int ProxyUid, int InboundPort, int OutboundPort, IReadOnlyList<int> ExcludeInboundPorts, IReadOnlyList<int> ExcludeOutboundPorts)
{
    public const string InboundChain = "MESHGUARD_INBOUND";
    public const string InboundRedirectChain = "MESHGUARD_IN_REDIRECT";
    public const string OutputChain = "MESHGUARD_OUTPUT";
    public const string OutboundRedirectChain = "MESHGUARD_REDIRECT";

    /// <summary>The jumps from the built-in chains into MeshGuard's, as iptables arguments after "-t nat -A|-D".</summary>
    public static readonly string[][] Jumps =
    [
        ["PREROUTING", "-p", "tcp", "-j", InboundChain],
        ["OUTPUT", "-p", "tcp", "-j", OutputChain],
    ];

    public static readonly string[] Chains = [InboundChain, InboundRedirectChain, OutputChain, OutboundRedirectChain];

    /// <summary>
    /// An iptables-restore (or, for <paramref name="ipv6"/>, ip6tables-restore) document for <c>--noflush</c> that
    /// adds MeshGuard's chains and the jumps into them.
    /// </summary>
    public string Render(bool ipv6 = false)
    {
        var text = new StringBuilder();
        text.Append("*nat\n");
        foreach (var chain in Chains)
        {
            text.Append(':').Append(chain).Append(" - [0:0]\n");
        }
        Rule(text, InboundRedirectChain, $"-p tcp -j REDIRECT --to-ports {Port(InboundPort)}");
        Rule(text, OutboundRedirectChain, $"-p tcp -j REDIRECT --to-ports {Port(OutboundPort)}");
        // Ports that must stay reachable as they are (health and metrics that listen on the pod address).
        foreach (var port in ExcludeInboundPorts)
        {
            Rule(text, InboundChain, $"-p tcp --dport {Port(port)} -j RETURN");
        }
        Rule(text, InboundChain, $"-p tcp -j {InboundRedirectChain}");
        // The sidecar's own connections leave as they are: without this, its mTLS would loop back into itself.
        Rule(text, OutputChain, $"-m owner --uid-owner {ProxyUid.ToString(CultureInfo.InvariantCulture)} -j RETURN");
        Rule(text, OutputChain, ipv6 ? "-d ::1/128 -j RETURN" : "-d 127.0.0.1/32 -j RETURN");
        foreach (var port in ExcludeOutboundPorts)
        {
            Rule(text, OutputChain, $"-p tcp --dport {Port(port)} -j RETURN");
        }
        Rule(text, OutputChain, $"-j {OutboundRedirectChain}");
        foreach (var jump in Jumps)
        {
            text.Append("-A ").Append(string.Join(' ', jump)).Append('\n');
        }
        text.Append("COMMIT\n");
        return text.ToString();
    }

    private static void Rule(StringBuilder text, string chain, string rule) => text.Append("-A ").Append(chain).Append(' ').Append(rule).Append('\n');

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);
}
