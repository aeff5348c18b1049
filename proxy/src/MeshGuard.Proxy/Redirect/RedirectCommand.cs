using System.CommandLine;
using System.Diagnostics;
using MeshGuard.CommandLine;

namespace MeshGuard.Proxy.Redirect;

/// <summary>
/// <c>meshguard-proxy redirect install|uninstall</c>: what the injected init container runs (as root, with
/// NET_ADMIN and NET_RAW, in the pod's network namespace) before the app starts. Install is idempotent: it
/// removes MeshGuard's chains first, then adds them in one iptables-restore transaction.
/// </summary>
internal static class RedirectCommand
{
    public static Command Create()
    {
        var proxyUid = CliOption.Port("--proxy-uid", "uid the sidecar runs as; its own connections are not redirected", 1337);
        var inboundPort = CliOption.Port("--inbound-port", "the sidecar's inbound (mTLS) port: where connections from outside the pod go", 15006);
        var outboundPort = CliOption.Port("--outbound-port", "the sidecar's outbound port: where the app's connections go", 15001);
        var excludeInbound = CliOption.Text("--exclude-inbound-ports", "inbound ports left as they are (comma-separated)");
        var excludeOutbound = CliOption.Text("--exclude-outbound-ports", "destination ports the app reaches directly (comma-separated)");
        var dryRun = CliOption.Flag("--dry-run", "print the rules and change nothing");
        var install = new Command("install", "send the pod's TCP through the sidecar (iptables nat rules, as istio-init writes them)")
        {
            proxyUid, inboundPort, outboundPort, excludeInbound, excludeOutbound, dryRun,
        };
        install.SetAction(parse =>
        {
            try
            {
                var rules = new RedirectRules(
                    parse.GetValue(proxyUid), parse.GetValue(inboundPort), parse.GetValue(outboundPort),
                    PortList.Parse(parse.GetValue(excludeInbound), "--exclude-inbound-ports"),
                    PortList.Parse(parse.GetValue(excludeOutbound), "--exclude-outbound-ports"));
                var document = rules.Render();
                var document6 = rules.Render(ipv6: true);
                Console.Write(document);
                Console.Write(document6);
                if (parse.GetValue(dryRun))
                {
                    return 0;
                }
                Remove();
                Run("iptables-restore", ["--noflush"], document, mustSucceed: true);
                if (HasIpv6)
                {
                    // Fails the install where IPv6 is up but its rules cannot be written: a pod must not start half redirected.
                    Run("ip6tables-restore", ["--noflush"], document6, mustSucceed: true);
                    Console.WriteLine("meshguard-proxy redirect: installed (IPv4 and IPv6)");
                }
                else
                {
                    Console.WriteLine("meshguard-proxy redirect: installed (IPv4; this network namespace has no IPv6)");
                }
                return 0;
            }
            catch (CliUsageException e)
            {
                Console.Error.WriteLine($"meshguard-proxy redirect: {e.Message}");
                return 2;
            }
            catch (RedirectException e)
            {
                Console.Error.WriteLine($"meshguard-proxy redirect: {e.Message}");
                return 1;
            }
        });
        var uninstall = new Command("uninstall", "remove MeshGuard's nat rules");
        uninstall.SetAction(_ =>
        {
            try
            {
                Remove();
                Console.WriteLine("meshguard-proxy redirect: removed");
                return 0;
            }
            catch (RedirectException e)
            {
                Console.Error.WriteLine($"meshguard-proxy redirect: {e.Message}");
                return 1;
            }
        });
        return new Command("redirect", "install or remove the transparent redirect of the pod's traffic") { install, uninstall };
    }

    /// <summary>Whether this network namespace has IPv6 at all (the kernel lists its IPv6 addresses there when it does).</summary>
    private static bool HasIpv6 => File.Exists("/proc/net/if_inet6");

    /// <summary>Deletes the jumps (however often they were added) and MeshGuard's chains, for both families; what is not there is skipped.</summary>
    private static void Remove()
    {
        foreach (var program in HasIpv6 ? new[] { "iptables", "ip6tables" } : ["iptables"])
        {
            foreach (var jump in RedirectRules.Jumps)
            {
                for (var i = 0; i < 16 && Run(program, ["-t", "nat", "-D", .. jump], null, mustSucceed: false); i++)
                {
                }
            }
            foreach (var chain in RedirectRules.Chains)
            {
                Run(program, ["-t", "nat", "-F", chain], null, mustSucceed: false);
            }
            foreach (var chain in RedirectRules.Chains)
            {
                Run(program, ["-t", "nat", "-X", chain], null, mustSucceed: false);
            }
        }
    }

    private static bool Run(string program, string[] arguments, string? input, bool mustSucceed)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardInput = input is not null,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new RedirectException($"{program} did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new RedirectException($"{program} cannot run ({e.Message}); the image needs iptables");
        }
        using (process)
        {
            if (input is not null)
            {
                process.StandardInput.Write(input);
                process.StandardInput.Close();
            }
            var error = process.StandardError.ReadToEndAsync();
            _ = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0 && mustSucceed)
            {
                throw new RedirectException($"{program} {string.Join(' ', arguments)} failed ({process.ExitCode}): {error.Result.Trim()}");
            }
            return process.ExitCode == 0;
        }
    }

    private sealed class RedirectException(string message) : Exception(message);
}
