using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Common.Injection;

namespace MeshGuard.Ctl.Demo;

/// <summary>
/// The mesh as a platform team runs it, in podman containers from this release's images (<c>./meshguard.sh images</c>):
/// the control plane (uid 65532, read-only root, no capabilities) on a network of its own, and one pod per service
/// as the injector makes it: the init container installs the redirect rules in the pod's network namespace (root
/// with NET_ADMIN and NET_RAW, only there), then the app, then the sidecar (uid 1337, read-only root, no
/// capabilities). Apps reach each other by service name with no proxy settings. Everything it made is removed on
/// dispose; its files stay under <see cref="Directory"/>.
/// </summary>
public sealed class ContainerMesh : IAsyncDisposable
{
    public const int AppPort = 8080;
    private static readonly TimeSpan PodmanTimeout = TimeSpan.FromSeconds(120);

    private readonly string _prefix = "mg-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
    private readonly Dictionary<string, string> _addresses = [];
    private readonly List<string> _pods = [];
    private string? _network;
    private string? _controlPlane;
    private string _subnet = "";

    public ContainerMesh(string directory)
    {
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public DataDirectory Data => new(Path.Combine(Directory, "cp"));

    public string ControlPlaneAddress => $"{_subnet}.2";

    public string AddressOf(string service) => _addresses[service];

    public string ContainerOf(string service, string part) => $"{PodOf(service)}-{part}";

    private string PodOf(string service) => $"{_prefix}-{service}";

    public string StateDirectoryOf(string service) => Path.Combine(Directory, "pods", service, "state");

    public string FlowDirectoryOf(string service) => Path.Combine(StateDirectoryOf(service), "flows");

    /// <summary>The network, then the control plane with <paramref name="policies"/>, then a pod per service.</summary>
    public async Task StartAsync(string policies, IReadOnlyList<string> services, CancellationToken cancellation)
    {
        // A subnet of its own for each run; one that another network holds already is passed over.
        for (var attempt = 0; _network is null; attempt++)
        {
            var subnet = $"10.89.{RandomNumberGenerator.GetInt32(1, 250)}";
            var (exit, output) = await PodmanAsync(["network", "create", "--subnet", $"{subnet}.0/24", $"{_prefix}-net"], cancellation, check: false);
            if (exit == 0)
            {
                (_network, _subnet) = ($"{_prefix}-net", subnet);
            }
            else if (attempt == 5)
            {
                throw new InvalidOperationException($"podman network create: {output.Trim()}");
            }
        }
        for (var i = 0; i < services.Count; i++)
        {
            _addresses[services[i]] = $"{_subnet}.{10 + i}";
        }

        var data = Data;
        System.IO.Directory.CreateDirectory(data.PoliciesDirectory);
        foreach (var file in System.IO.Directory.GetFiles(policies, "*.yaml"))
        {
            File.Copy(file, Path.Combine(data.PoliciesDirectory, Path.GetFileName(file)), overwrite: true);
        }
        await OwnAsync(data.Root, 65532, cancellation);
        _controlPlane = $"{_prefix}-cp";
        await PodmanAsync([
            "run", "-d", "--name", _controlPlane, "--network", _network, "--ip", ControlPlaneAddress, "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "-v", $"{data.Root}:/var/lib/meshguard", Image("control-plane"),
            "--data", "/var/lib/meshguard", "--trust-domain", LocalMesh.TrustDomain, "--bind-address", "0.0.0.0"], cancellation);
        await WaitForLogAsync(_controlPlane, " webhook=", cancellation);

        var hosts = _addresses.SelectMany(static a => new[] { "--add-host", $"{a.Key}:{a.Value}" }).ToList();
        var store = new JoinTokenStore(data.Root, TimeProvider.System);
        var tokens = services.ToDictionary(static s => s, s => store.Create(LocalMesh.IdentityOf(s), TimeSpan.FromMinutes(10)));
        // Written by this process: the control plane (uid 65532) reads them and marks them used.
        await OwnAsync(data.Root, 65532, cancellation);
        var sidecars = new List<string>();
        foreach (var service in services)
        {
            var pod = PodOf(service);
            await PodmanAsync(["pod", "create", "--name", pod, "--network", _network, "--ip", _addresses[service], .. hosts], cancellation);
            _pods.Add(pod);
            // The init container: the pod's nat rules, before anything else of the pod runs, as the injector writes it.
            await PodmanAsync([
                "run", "--rm", "--pod", pod, "--name", ContainerOf(service, "init"), "--user", "0:0", "--read-only", "--cap-drop", "ALL",
                "--cap-add", "NET_ADMIN,NET_RAW", Image("proxy-init"), .. SidecarInjector.InitArguments(new InjectionTemplate())], cancellation);
            await PodmanAsync([
                "run", "-d", "--pod", pod, "--name", ContainerOf(service, "app"), "--read-only", "--cap-drop", "ALL", Image("sample"),
                "--name", service, "--port", Text(AppPort)], cancellation);
            var state = StateDirectoryOf(service);
            System.IO.Directory.CreateDirectory(state);
            await OwnAsync(state, 1337, cancellation);
            await PodmanAsync([
                "run", "-d", "--pod", pod, "--name", ContainerOf(service, "sidecar"), "--user", "1337:1337", "--read-only", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges", "-v", $"{state}:/var/lib/meshguard", "-v", $"{data.TrustBundle}:/etc/meshguard/bundle.pem:ro",
                Image("proxy"),
                "--cp", $"https://{ControlPlaneAddress}:15012", "--cp-bundle", "/etc/meshguard/bundle.pem", "--join-token", tokens[service],
                "--service", service, "--app-port", Text(AppPort), "--inbound-address", "0.0.0.0",
                "--advertise-address", $"{_addresses[service]}:15006", "--state-dir", "/var/lib/meshguard"], cancellation);
            sidecars.Add(ContainerOf(service, "sidecar"));
        }
        foreach (var sidecar in sidecars)
        {
            await WaitForLogAsync(sidecar, $", {services.Count} services", cancellation);
        }
    }

    /// <summary>
    /// <paramref name="from"/>'s app image, run once in <paramref name="from"/>'s pod, calls
    /// <c>http://TO:8080PATH</c> by name: the redirect carries it through both sidecars. Its JSON answer.
    /// </summary>
    public async Task<string> CallAsync(string from, string to, string method, string path, CancellationToken cancellation)
    {
        var (_, output) = await PodmanAsync([
            "run", "--rm", "--pod", PodOf(from), "--read-only", "--cap-drop", "ALL", Image("sample"),
            "--call", $"http://{to}:{AppPort}{path}", "--method", method], cancellation, check: false);
        return output.Split('\n').LastOrDefault(static l => l.StartsWith('{')) ?? output.Trim();
    }

    /// <summary><c>meshctl flows verify</c> from the meshctl image, over a sidecar's flow log (read as the sidecar's uid).</summary>
    public Task<(int ExitCode, string Output)> VerifyFlowsAsync(string service, CancellationToken cancellation) =>
        PodmanAsync([
            "run", "--rm", "--network", "none", "--user", "1337:1337", "--read-only", "--cap-drop", "ALL",
            "-v", $"{FlowDirectoryOf(service)}:/flows:ro", "-v", $"{Data.TrustBundle}:/bundle.pem:ro", Image("meshctl"),
            "flows", "verify", "/flows", "--bundle", "/bundle.pem"], cancellation, check: false);

    /// <summary>What the kernel says of a container's main process: its uids and capability sets, from /proc.</summary>
    public static async Task<string> ProcessStatusAsync(string container, CancellationToken cancellation)
    {
        var (_, pid) = await InspectAsync(container, "{{.State.Pid}}", cancellation);
        return await File.ReadAllTextAsync($"/proc/{pid.Trim()}/status", cancellation);
    }

    public static Task<(int ExitCode, string Output)> InspectAsync(string container, string format, CancellationToken cancellation) =>
        PodmanAsync(["inspect", "--format", format, container], cancellation);

    public static async Task<string> LogsAsync(string container, CancellationToken cancellation) =>
        (await PodmanAsync(["logs", container], cancellation, check: false)).Output;

    private static string Image(string name) => MeshGuardImages.Of(name);

    private static async Task WaitForLogAsync(string container, string text, CancellationToken cancellation)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var logs = await LogsAsync(container, cancellation);
            if (logs.Contains(text, StringComparison.Ordinal))
            {
                return;
            }
            var (_, running) = await PodmanAsync(["inspect", "--format", "{{.State.Running}}", container], cancellation, check: false);
            if (running.Trim() != "true" || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"{container} did not log '{text}' ({(running.Trim() == "true" ? "timed out" : "exited")}):\n{logs}");
            }
            await Task.Delay(250, cancellation);
        }
    }

    private static async Task OwnAsync(string path, int uid, CancellationToken cancellation) =>
        await RunAsync("chown", ["-R", $"{uid}:{uid}", path], check: true, cancellation);

    private static Task<(int ExitCode, string Output)> PodmanAsync(IReadOnlyList<string> arguments, CancellationToken cancellation, bool check = true) =>
        RunAsync("podman", arguments, check, cancellation);

    private static async Task<(int ExitCode, string Output)> RunAsync(string program, IReadOnlyList<string> arguments, bool check, CancellationToken cancellation)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        timeout.CancelAfter(PodmanTimeout);
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments.Take(3))} did not finish within {PodmanTimeout.TotalSeconds:F0}s");
        }
        var output = new StringBuilder(await stdout).Append(await stderr).ToString();
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments.Take(3))} exited {process.ExitCode}: {output.Trim()}");
        }
        return (process.ExitCode, output);
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Pods (their containers with them), the control plane and the network: everything this mesh made.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var pod in _pods)
        {
            await PodmanAsync(["pod", "rm", "-f", "-t", "0", pod], CancellationToken.None, check: false);
        }
        if (_controlPlane is not null)
        {
            await PodmanAsync(["rm", "-f", "-t", "0", _controlPlane], CancellationToken.None, check: false);
        }
        if (_network is not null)
        {
            await PodmanAsync(["network", "rm", "-f", _network], CancellationToken.None, check: false);
        }
    }
}
