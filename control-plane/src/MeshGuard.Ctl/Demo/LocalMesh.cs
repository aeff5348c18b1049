using System.Net;
using System.Net.Sockets;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Spiffe;

namespace MeshGuard.Ctl.Demo;

/// <summary>
/// A mesh on 127.0.0.1 made of real processes: one control plane, and per service a sample app and its
/// sidecar. Used by <c>meshctl demo</c> and by the functional tests.
/// </summary>
public sealed class LocalMesh : IAsyncDisposable
{
    public const string TrustDomain = "mesh.local";

    private readonly List<MeshProcess> _processes = [];
    private readonly HttpClient _probe = new() { Timeout = TimeSpan.FromSeconds(2) };

    public LocalMesh(string directory)
    {
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public DataDirectory Data => new(Path.Combine(Directory, "cp"));

    public ControlPlaneEndpoints? ControlPlane { get; private set; }

    public IReadOnlyList<MeshProcess> Processes => _processes;

    /// <summary>Starts meshguard-cp and waits until its admin port answers.</summary>
    /// <param name="policiesFrom">A directory whose *.yaml files are copied into the control plane's policies/ first.</param>
    /// <param name="defaultPolicy">The mesh default: deny, allow-authenticated or allow.</param>
    /// <param name="replica">Another replica: its name (for its log) and data directory; the mesh's own control plane stays the first.</param>
    public async Task<ControlPlaneEndpoints> StartControlPlaneAsync(
        TimeSpan? svidTtl = null, string? policiesFrom = null, string defaultPolicy = "deny", int[]? ports = null, IReadOnlyList<string>? extraArguments = null,
        (string Name, DataDirectory Data)? replica = null, CancellationToken cancellation = default)
    {
        var (name, data) = replica ?? ("control-plane", Data);
        if (policiesFrom is not null)
        {
            System.IO.Directory.CreateDirectory(Data.PoliciesDirectory);
            foreach (var file in System.IO.Directory.GetFiles(policiesFrom, "*.yaml"))
            {
                File.Copy(file, Path.Combine(Data.PoliciesDirectory, Path.GetFileName(file)), overwrite: true);
            }
        }
        ports ??= FreePorts(4);
        var endpoints = new ControlPlaneEndpoints(data.Root, data.TrustBundle, ports[0], ports[1], ports[2], ports.Length > 3 ? ports[3] : FreePorts(1)[0]);
        var arguments = new List<string>
        {
            "--data", data.Root, "--trust-domain", TrustDomain,
            "--bootstrap-port", ports[0].ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--grpc-port", ports[1].ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--admin-port", ports[2].ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--webhook-port", endpoints.WebhookPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--default-policy", defaultPolicy,
        };
        if (svidTtl is { } ttl)
        {
            arguments.Add("--svid-ttl");
            arguments.Add($"{ttl.TotalMilliseconds:F0}ms");
        }
        arguments.AddRange(extraArguments ?? []);
        var process = Track(MeshProcess.Start(name, "meshguard-cp", arguments, Path.Combine(Directory, "logs", name + ".log")));
        await WaitForAsync(process, new Uri($"http://127.0.0.1:{endpoints.AdminPort}/healthz"), cancellation);
        if (replica is null)
        {
            ControlPlane = endpoints;
        }
        return endpoints;
    }

    public string CreateJoinToken(SpiffeId id, TimeSpan? ttl = null) =>
        new JoinTokenStore(Data.Root, TimeProvider.System).Create(id, ttl ?? TimeSpan.FromMinutes(10));

    public static SpiffeId IdentityOf(string service, string ns = "shop") => SpiffeId.ForWorkload(TrustDomain, ns, service);

    /// <summary>Starts a sample app and its sidecar; waits until the sidecar is ready (SVID and service table).</summary>
    public async Task<MeshService> StartServiceAsync(string name, string ns = "shop", CancellationToken cancellation = default)
    {
        var ports = FreePorts(5);
        var service = new MeshService(name, ns, ports[0], ports[1], ports[2], ports[3], ports[4]);
        service.App = Track(MeshProcess.Start($"{name}-app", "meshguard-sample",
            ["--name", name, "--port", Text(service.AppPort), "--outbound", $"http://127.0.0.1:{service.OutboundPort}"],
            Path.Combine(Directory, "logs", $"{name}-app.log")));
        await WaitForAsync(service.App, new Uri($"http://127.0.0.1:{service.AppPort}/healthz"), cancellation);
        return await StartSidecarAsync(service, cancellation: cancellation);
    }

    /// <summary>Starts a sidecar for an app that already listens on <paramref name="appPort"/>.</summary>
    public Task<MeshService> StartSidecarAsync(
        string name, int appPort, string ns = "shop", string? joinToken = null, string? advertiseAddress = null, bool waitReady = true,
        IReadOnlyList<string>? extraArguments = null, IDictionary<string, string>? environment = null, IReadOnlyList<ControlPlaneEndpoints>? controlPlanes = null,
        IReadOnlyList<string>? launcher = null, CancellationToken cancellation = default)
    {
        var ports = FreePorts(4);
        var service = new MeshService(name, ns, appPort, ports[0], ports[1], ports[2], ports[3])
        {
            ExtraArguments = extraArguments ?? [],
            Environment = environment,
            ControlPlanes = controlPlanes,
            Launcher = launcher,
        };
        return StartSidecarAsync(service, joinToken, advertiseAddress, waitReady, cancellation);
    }

    private async Task<MeshService> StartSidecarAsync(MeshService service, string? joinToken = null, string? advertiseAddress = null, bool waitReady = true, CancellationToken cancellation = default)
    {
        IReadOnlyList<ControlPlaneEndpoints> replicas = service.ControlPlanes
            ?? [ControlPlane ?? throw new InvalidOperationException("start the control plane first")];
        var arguments = new List<string>
        {
            "--cp", string.Join(',', replicas.Select(static r => $"https://127.0.0.1:{r.BootstrapPort}")),
            "--cp-bundle", replicas[0].BundleFile,
            "--join-token", joinToken ?? CreateJoinToken(IdentityOf(service.Name, service.Namespace)),
            "--service", service.Name,
            "--app-port", Text(service.AppPort),
            "--inbound-port", Text(service.InboundPort),
            "--outbound-port", Text(service.OutboundPort),
            "--admin-port", Text(service.AdminPort),
            "--metrics-port", Text(service.MetricsPort),
            "--state-dir", StateDirectoryOf(service),
        };
        service.FlowDirectory ??= FlowDirectoryFor(service);
        arguments.Add("--flow-log-dir");
        arguments.Add(service.FlowDirectory);
        if (advertiseAddress is not null)
        {
            arguments.Add("--advertise-address");
            arguments.Add(advertiseAddress);
        }
        arguments.AddRange(service.ExtraArguments);
        service.Sidecar = Track(MeshProcess.Start($"{service.Name}-sidecar", "meshguard-proxy", arguments,
            Path.Combine(Directory, "logs", $"{service.Name}-sidecar-{service.InboundPort}.log"), service.Environment, service.Launcher));
        if (waitReady)
        {
            await WaitForAsync(service.Sidecar, new Uri($"http://127.0.0.1:{service.AdminPort}/ready"), cancellation);
        }
        return service;
    }

    /// <summary>
    /// Where a sidecar writes its flow log: &lt;dir&gt;/&lt;service&gt;/flows, or with the inbound port added when a
    /// sidecar of that name already has the plain one (two writers never share a chain).
    /// </summary>
    public string FlowDirectoryFor(MeshService service)
    {
        var plain = Path.Combine(Directory, service.Name, "flows");
        lock (_flowDirectories)
        {
            var chosen = _flowDirectories.Add(plain) ? plain : Path.Combine(Directory, $"{service.Name}-{service.InboundPort}", "flows");
            _flowDirectories.Add(chosen);
            return chosen;
        }
    }

    private readonly HashSet<string> _flowDirectories = new(StringComparer.Ordinal);

    /// <summary>Where a sidecar keeps its SVID and last good snapshot: one directory per service name and inbound port.</summary>
    public string StateDirectoryOf(MeshService service) => Path.Combine(Directory, "sidecars", $"{service.Name}-{service.InboundPort}");

    /// <summary>Starts a sidecar again with the same ports and state directory, and no join token: it must resume from disk.</summary>
    public async Task<MeshService> RestartSidecarAsync(MeshService service, bool waitReady = true, CancellationToken cancellation = default)
    {
        if (service.Sidecar is { } old)
        {
            await old.StopAsync(TimeSpan.FromSeconds(10));
        }
        return await StartSidecarAsync(service, joinToken: "", waitReady: waitReady, cancellation: cancellation);
    }

    /// <summary>Polls <paramref name="url"/> until it answers 200; fails early if the process died.</summary>
    public async Task WaitForAsync(MeshProcess process, Uri url, CancellationToken cancellation, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (DateTime.UtcNow < deadline)
        {
            cancellation.ThrowIfCancellationRequested();
            if (process.HasExited)
            {
                throw new InvalidOperationException($"{process.Name} exited with code {process.ExitCode}:\n{process.ReadLog()}");
            }
            try
            {
                using var response = await _probe.GetAsync(url, cancellation);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!cancellation.IsCancellationRequested)
            {
            }
            await Task.Delay(100, cancellation);
        }
        throw new TimeoutException($"{process.Name} did not answer {url} in time:\n{process.ReadLog()}");
    }

    public MeshProcess Track(MeshProcess process)
    {
        lock (_processes)
        {
            _processes.Add(process);
        }
        lock (Running)
        {
            Running.Add(process);
        }
        return process;
    }

    // Safety net: whatever a mesh started and nobody stopped (a fixture that failed half-way) ends with this process.
    private static readonly List<MeshProcess> Running = [];

    static LocalMesh() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        lock (Running)
        {
            foreach (var process in Running)
            {
                process.Kill();
            }
        }
    };

    /// <summary>Stops every process this mesh started, sidecars and apps first, the control plane last.</summary>
    public async ValueTask DisposeAsync()
    {
        MeshProcess[] processes;
        lock (_processes)
        {
            processes = [.. _processes];
            _processes.Clear();
        }
        Array.Reverse(processes);
        await Task.WhenAll(Array.ConvertAll(processes, p => p.DisposeAsync().AsTask()));
        _probe.Dispose();
    }

    private static readonly HashSet<int> HandedOut = [];

    /// <summary>
    /// Ports free right now (probed by binding each), never one this process handed out before, and outside
    /// the kernel's ephemeral range, so nothing the OS assigns on its own can take one before it is used.
    /// </summary>
    public static int[] FreePorts(int count)
    {
        var ports = new List<int>(count);
        var probes = new List<TcpListener>();
        try
        {
            // Below the kernel's ephemeral range: no connect() and no bind to port 0 (a sidecar's internal
            // listener, ten thousand test clients) can take the port between this probe and the real bind.
            var (low, high) = ProbeRange();
            var span = high - low + 1;
            var start = Random.Shared.Next(span);
            for (var i = 0; i < span && ports.Count < count; i++)
            {
                var port = low + (start + i) % span;
                lock (HandedOut)
                {
                    if (HandedOut.Contains(port))
                    {
                        continue;
                    }
                }
                var listener = new TcpListener(IPAddress.Loopback, port);
                try
                {
                    listener.Start();
                }
                catch (SocketException)
                {
                    continue;
                }
                probes.Add(listener);
                lock (HandedOut)
                {
                    if (HandedOut.Add(port))
                    {
                        ports.Add(port);
                    }
                }
            }
            if (ports.Count < count)
            {
                throw new InvalidOperationException($"no {count} free ports between {low} and {high}");
            }
        }
        finally
        {
            foreach (var probe in probes)
            {
                probe.Stop();
            }
        }
        return [.. ports];
    }

    /// <summary>
    /// Ports from 10000 up to the start of the ephemeral range (Linux: ip_local_port_range; 32768 by default), or
    /// the range <c>MESHGUARD_LOCAL_PORTS=LOW-HIGH</c> names: two test runs at once each take their own range, since
    /// a port one process probed free is not yet bound when the other probes it.
    /// </summary>
    private static (int Low, int High) ProbeRange()
    {
        if (Environment.GetEnvironmentVariable("MESHGUARD_LOCAL_PORTS") is { Length: > 0 } named)
        {
            var bounds = named.Split('-');
            if (bounds.Length == 2 && int.TryParse(bounds[0], out var low) && int.TryParse(bounds[1], out var high) && 1024 <= low && low < high && high <= 65535)
            {
                return (low, high);
            }
            throw new InvalidOperationException($"MESHGUARD_LOCAL_PORTS={named}: expected LOW-HIGH, two ports from 1024 to 65535, LOW below HIGH");
        }
        var ephemeralStart = 32768;
        try
        {
            var range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            ephemeralStart = int.Parse(range[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
        }
        return ephemeralStart > 11000 ? (10000, ephemeralStart - 1) : (ephemeralStart, 65535);
    }

    private static string Text(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

public sealed record ControlPlaneEndpoints(string DataDirectory, string BundleFile, int BootstrapPort, int GrpcPort, int AdminPort, int WebhookPort);

public sealed record MeshService(string Name, string Namespace, int AppPort, int InboundPort, int OutboundPort, int AdminPort, int MetricsPort)
{
    public MeshProcess? Sidecar { get; set; }

    public MeshProcess? App { get; set; }

    /// <summary>The sidecar's flow log directory (kept across its restarts).</summary>
    public string? FlowDirectory { get; set; }

    /// <summary>Environment variables for the sidecar (e.g. OTEL_*), kept for restarts.</summary>
    public IDictionary<string, string>? Environment { get; init; }

    /// <summary>The control-plane replicas this sidecar is given, in order, where it is not just the mesh's first one.</summary>
    public IReadOnlyList<ControlPlaneEndpoints>? ControlPlanes { get; init; }

    /// <summary>More sidecar flags (e.g. --opaque-ports), kept for restarts.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>A program the sidecar runs under (MeshProcess.Start's launcher, e.g. a tracer), kept for restarts.</summary>
    public IReadOnlyList<string>? Launcher { get; init; }

    public SpiffeId Identity => LocalMesh.IdentityOf(Name, Namespace);
}
