namespace MeshGuard.Tests.Common;

/// <summary>
/// A real single-member etcd (Debian's etcd-server) on loopback, with its data in a temporary directory: started
/// by the test, restarted on the same ports and data to show what a store outage does, and killed by its own id.
/// </summary>
public sealed class EtcdServer : IAsyncDisposable
{
    public const string Binary = "/usr/bin/etcd";
    private readonly TempDirectory _data = new();
    private readonly int _clientPort;
    private readonly int _peerPort;
    private ServerProcess? _process;

    private EtcdServer(int clientPort, int peerPort)
    {
        _clientPort = clientPort;
        _peerPort = peerPort;
    }

    /// <summary>For meshguard-cp and meshctl: <c>--store etcd:http://127.0.0.1:PORT</c>.</summary>
    public string Store => $"etcd:{Endpoint}";

    public string Endpoint => $"http://127.0.0.1:{_clientPort}";

    public string Output => _process?.Output ?? "";

    /// <param name="ports">Two free ports: client and peer.</param>
    public static async Task<EtcdServer> StartAsync(int[] ports)
    {
        if (!File.Exists(Binary))
        {
            throw new InvalidOperationException($"{Binary} is missing: apt-get install etcd-server (./meshguard.sh test installs it)");
        }
        var server = new EtcdServer(ports[0], ports[1]);
        await server.StartProcessAsync();
        return server;
    }

    /// <summary>Stops etcd as a crash would (SIGKILL); its data stays for <see cref="StartAgainAsync"/>.</summary>
    public async Task KillAsync()
    {
        if (_process is not null)
        {
            await _process.DisposeAsync();
            _process = null;
        }
    }

    public Task StartAgainAsync() => StartProcessAsync();

    private async Task StartProcessAsync()
    {
        var peer = $"http://127.0.0.1:{_peerPort}";
        _process = await ServerProcess.StartAsync(Binary,
        [
            "--name", "meshguard-test", "--data-dir", _data.Combine("member"),
            "--listen-client-urls", Endpoint, "--advertise-client-urls", Endpoint,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "meshguard-test=" + peer, "--initial-cluster-state", "new",
            "--logger", "zap",
        ], "serving client traffic", TimeSpan.FromSeconds(30)); // logged once the member is ready for requests
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _data.Dispose();
    }
}
