using System.Globalization;
using Npgsql;

namespace MeshGuard.Tests.Common;

/// <summary>
/// A real PostgreSQL server (Debian's postgresql) on loopback, with its cluster in a temporary directory: made
/// with initdb and run as the postgres user (the server refuses root), password authentication only, and
/// killed by its own id. Durability is traded for speed (fsync off): the tests kill control planes, never it.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private const string User = "meshguard";
    private const string Database = "meshguard";
    private readonly TempDirectory _root = new();
    private readonly string _password = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(12));
    private readonly int _port;
    private ServerProcess? _process;

    private PostgresServer(int port) => _port = port;

    /// <summary>For meshguard-cp and meshctl: <c>--flow-store postgres://...</c>.</summary>
    public string Url => $"postgres://{User}:{_password}@127.0.0.1:{_port.ToString(CultureInfo.InvariantCulture)}/{Database}";

    /// <summary>The same database as <see cref="Url"/>, for a test to look at (or tamper with) what is stored.</summary>
    public string ConnectionString => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = _port,
        Username = User,
        Password = _password,
        Database = Database,
        Pooling = false,
    }.ConnectionString;

    public string Output => _process?.Output ?? "";

    /// <summary>The binaries of the newest PostgreSQL installed (/usr/lib/postgresql/VERSION/bin).</summary>
    public static string BinDirectory()
    {
        var versions = Directory.Exists("/usr/lib/postgresql") ? Directory.GetDirectories("/usr/lib/postgresql") : [];
        var newest = versions.Where(v => File.Exists(Path.Combine(v, "bin", "postgres")))
            .OrderByDescending(v => int.TryParse(Path.GetFileName(v), out var n) ? n : 0).FirstOrDefault();
        return newest is null
            ? throw new InvalidOperationException("no PostgreSQL server under /usr/lib/postgresql: apt-get install postgresql (./meshguard.sh test installs it)")
            : Path.Combine(newest, "bin");
    }

    public static async Task<PostgresServer> StartAsync(int port)
    {
        var server = new PostgresServer(port);
        try
        {
            await server.InitAsync();
            await server.StartProcessAsync();
            await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = "postgres" }.ConnectionString);
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {Database}", connection);
            await create.ExecuteNonQueryAsync();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    private async Task InitAsync()
    {
        var passwordFile = _root.Combine("password");
        await File.WriteAllTextAsync(passwordFile, _password + "\n");
        await RunAsync("chown", "-R", "postgres:postgres", _root.Path);
        await RunAsync("setpriv", [.. AsPostgres, Path.Combine(BinDirectory(), "initdb"), "-D", _root.Combine("data"), "-U", User,
            "--auth=scram-sha-256", "--pwfile=" + passwordFile, "--no-sync", "-E", "UTF8", "--locale=C"]);
        File.Delete(passwordFile);
    }

    private static readonly string[] AsPostgres = ["--reuid=postgres", "--regid=postgres", "--init-groups"];

    private async Task StartProcessAsync() =>
        _process = await ServerProcess.StartAsync("setpriv",
        [
            .. AsPostgres, Path.Combine(BinDirectory(), "postgres"), "-D", _root.Combine("data"),
            "-p", _port.ToString(CultureInfo.InvariantCulture), "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=" + _root.Path, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        ], "database system is ready to accept connections", TimeSpan.FromSeconds(30));

    private static async Task RunAsync(string program, params string[] arguments)
    {
        var (exit, output) = await ExternalProcess.RunAsync(program, arguments, timeout: TimeSpan.FromSeconds(60));
        if (exit != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited {exit}:\n{output}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            await _process.DisposeAsync();
            _process = null;
        }
        _root.Dispose();
    }
}
