using System.Text.Json;
using MeshGuard.ControlPlane.Common.Injection;

namespace MeshGuard.Ctl.Demo;

/// <summary>
/// <c>meshctl demo --containers</c>: the demo's mesh as podman pods from the release's images (see
/// <see cref="ContainerMesh"/>): frontend calls orders by name, allowed and refused by the orders team's policy;
/// then both sidecars' flow records and <c>meshctl flows verify</c> from the meshctl image. Exit 0 only if every
/// step behaved as expected; the pods are removed afterwards (files kept in the directory).
/// </summary>
internal static class ContainerDemoRun
{
    private static readonly string[] Services = ["frontend", "orders"];

    public static async Task<int> RunAsync(string directory, string policies, CancellationToken cancellation)
    {
        if (System.IO.Directory.Exists(directory))
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
        await using var mesh = new ContainerMesh(directory);
        try
        {
            await mesh.StartAsync(policies, Services, cancellation);
            Console.WriteLine($"control-plane container {MeshGuardImages.ControlPlane} at {mesh.ControlPlaneAddress}:15012 (uid 65532, read-only root, no capabilities)");
            foreach (var service in Services)
            {
                var status = await ContainerMesh.ProcessStatusAsync(mesh.ContainerOf(service, "sidecar"), cancellation);
                Console.WriteLine($"pod {service} at {mesh.AddressOf(service)}: init {MeshGuardImages.ProxyInit} (redirect rules), app {MeshGuardImages.Sample}, " +
                    $"sidecar {MeshGuardImages.Proxy} ({StatusLine(status, "Uid")}, {StatusLine(status, "CapEff")})");
            }
            Console.WriteLine();
            var ok = true;
            ok &= await CallAsync(mesh, "frontend", "orders", "GET", "/orders/42", 200, cancellation);
            ok &= await CallAsync(mesh, "frontend", "orders", "DELETE", "/orders/42", 403, cancellation);
            ok &= await CallAsync(mesh, "orders", "frontend", "GET", "/", 403, cancellation);
            await Task.Delay(500, cancellation);
            Console.WriteLine();
            Console.WriteLine("flow records:");
            foreach (var service in Services)
            {
                foreach (var record in FlowLog.FlowLogReader.Records(mesh.FlowDirectoryOf(service)).Where(static r => FlowLog.FlowLogReader.Text(r, "kind") == "flow"))
                {
                    Console.WriteLine("  " + Commands.FlowsCommand.Row(record));
                }
            }
            Console.WriteLine();
            foreach (var service in Services)
            {
                var (exit, output) = await mesh.VerifyFlowsAsync(service, cancellation);
                ok &= exit == 0;
                Console.WriteLine($"{(exit == 0 ? "ok  " : "FAIL")} {service}: meshctl flows verify (meshguard/meshctl image): {output.Trim().Split('\n')[^1]}");
            }
            Console.WriteLine();
            Console.WriteLine(ok ? "demo: every call behaved as expected" : "demo: some calls did not behave as expected");
            Console.WriteLine($"demo: files in {mesh.Directory}; pods removed");
            return ok ? 0 : 1;
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
        {
            await Console.Error.WriteLineAsync($"meshctl demo --containers: {e.Message}");
            return 1;
        }
    }

    private static string StatusLine(string status, string field) =>
        status.Split('\n').FirstOrDefault(l => l.StartsWith(field + ":", StringComparison.Ordinal))?.Replace('\t', ' ').Trim() ?? $"{field}: ?";

    private static async Task<bool> CallAsync(ContainerMesh mesh, string from, string to, string method, string path, int expected, CancellationToken cancellation)
    {
        var answer = await mesh.CallAsync(from, to, method, path, cancellation);
        var status = 0;
        try
        {
            using var call = JsonDocument.Parse(answer);
            status = call.RootElement.GetProperty("status").GetInt32();
        }
        catch (JsonException)
        {
        }
        var ok = status == expected;
        Console.WriteLine($"{(ok ? "ok  " : "FAIL")} {from,-9} -> http://{to}:{ContainerMesh.AppPort}{path,-11} {method,-6} {status} {(status == 200 ? "allowed" : status == 403 ? "denied" : answer)}");
        return ok;
    }
}
