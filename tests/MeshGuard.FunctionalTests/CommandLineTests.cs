using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>Bad input on the command line: one clear line and a non-zero exit, nothing half-written.</summary>
public sealed class CommandLineTests
{
    public CommandLineTests() => MeshBinaries.Ensure();

    [Theory]
    [InlineData("meshguard-cp")]
    [InlineData("meshguard-proxy")]
    [InlineData("meshctl")]
    public async Task AnUnknownFlagIsRefused(string executable)
    {
        var (exit, output) = await Cli.RunAsync(executable, "--no-such-flag");
        Assert.NotEqual(0, exit);
        Assert.Contains("--no-such-flag", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ControlPlaneInitMakesACaOnceWithOwnerOnlyKeysAndABundleOpenSslChecksItWith()
    {
        using var temp = new TempDirectory();
        var data = Path.Combine(temp.Path, "ca-out");

        var (exit, output) = await Cli.RunAsync("meshguard-cp", "init", "--data", data, "--trust-domain", "cluster.example");
        Assert.True(exit == 0, output);
        Assert.Contains("made a CA for trust domain cluster.example", output, StringComparison.Ordinal);
        foreach (var key in new[] { "root.key", "intermediate.key" })
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(data, "ca", key)));
        }
        var (verify, verified) = OpenSsl.Run("verify", "-CAfile", Path.Combine(data, "bundle.pem"), Path.Combine(data, "ca", "intermediate.crt"));
        Assert.True(verify == 0, verified);
        var root = await File.ReadAllTextAsync(Path.Combine(data, "ca", "root.crt"));

        (exit, output) = await Cli.RunAsync("meshguard-cp", "init", "--data", data, "--trust-domain", "cluster.example");
        Assert.True(exit == 0, output);
        Assert.Contains("kept the existing CA", output, StringComparison.Ordinal);
        (exit, output) = await Cli.RunAsync("meshguard-cp", "init", "--data", data, "--trust-domain", "other.example");
        Assert.Equal(1, exit);
        Assert.Contains("is for trust domain 'cluster.example', not 'other.example'", output, StringComparison.Ordinal);
        Assert.Equal(root, await File.ReadAllTextAsync(Path.Combine(data, "ca", "root.crt")));
    }

    [Fact]
    public async Task AControlPlaneWhoseFlowStoreIsBadOrUnreachableDoesNotStartAndNeverPrintsThePassword()
    {
        using var temp = new TempDirectory();
        var port = MeshGuard.Ctl.Demo.LocalMesh.FreePorts(1)[0];
        var (exit, output) = await Cli.RunAsync("meshguard-cp", "--data", temp.Path, "--flow-store", "postgres://meshguard:hunter2@127.0.0.1/");
        Assert.Equal(2, exit);
        Assert.Contains("--flow-store 'postgres://meshguard:***@127.0.0.1/': a host and one database name are required", output, StringComparison.Ordinal);

        // Nothing listens on the port: the store cannot be reached, and no port is opened.
        (exit, output) = await Cli.RunAsync("meshguard-cp", "--data", temp.Path, "--flow-store", $"postgres://meshguard:hunter2@127.0.0.1:{port}/flows");
        Assert.Equal(1, exit);
        Assert.Contains($"--flow-store postgres://meshguard:***@127.0.0.1:{port}/flows: Failed to connect", output, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65")]
    public async Task TheControlPlaneRefusesASidecarCoreCountOutsideOneTo64(string cpus)
    {
        using var temp = new TempDirectory();
        var (exit, output) = await Cli.RunAsync("meshguard-cp", "--data", temp.Path, "--sidecar-cpus", cpus);
        Assert.Equal(2, exit);
        Assert.Contains("--sidecar-cpus must be from 1 to 64", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MeshctlTokenCreateRefusesAMissingDataDirectory()
    {
        var (exit, output) = await Cli.RunAsync("meshctl", "token", "create", "--data", "/nonexistent/meshguard", "--spiffe-id", "spiffe://mesh.local/ns/a/sa/b");
        Assert.NotEqual(0, exit);
        Assert.Contains("data directory /nonexistent/meshguard does not exist", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MeshctlTokenCreateRefusesABadSpiffeId()
    {
        using var temp = new TempDirectory();
        var (exit, output) = await Cli.RunAsync("meshctl", "token", "create", "--data", temp.Path, "--spiffe-id", "spiffe://mesh.local/ns/a/");
        Assert.Equal(2, exit);
        Assert.Contains("must not end with '/'", output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(temp.Path, "tokens")));
    }

    [Fact]
    public async Task MeshctlTokenCreateRefusesATrustDomainWithoutAWorkloadPath()
    {
        using var temp = new TempDirectory();
        var (exit, output) = await Cli.RunAsync("meshctl", "token", "create", "--data", temp.Path, "--spiffe-id", "spiffe://mesh.local");
        Assert.Equal(2, exit);
        Assert.Contains("names a trust domain, not a workload", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheProxyRefusesABadBundleFile()
    {
        using var temp = new TempDirectory();
        var bundle = temp.Combine("bundle.pem");
        File.WriteAllText(bundle, "garbage");
        var (exit, output) = await Cli.RunAsync("meshguard-proxy", "--cp-bundle", bundle, "--join-token", "mgjt_x", "--service", "orders",
            "--inbound-port", "0", "--outbound-port", "0", "--admin-port", "0");
        Assert.Equal(1, exit);
        Assert.Contains($"{bundle}: trust bundle holds no certificate", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheProxyNamesAMissingRequiredFlag()
    {
        var (exit, output) = await Cli.RunAsync("meshguard-proxy", "--service", "orders");
        Assert.Equal(2, exit);
        Assert.Contains("--cp-bundle is required (or set MESHGUARD_CP_BUNDLE)", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheControlPlaneNamesTheFlagOfAPortAnotherProcessHolds()
    {
        using var temp = new TempDirectory();
        var ports = MeshGuard.Ctl.Demo.LocalMesh.FreePorts(3);
        using var holder = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        holder.Start();
        var held = ((System.Net.IPEndPoint)holder.LocalEndpoint).Port;
        string Text(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);

        var (exit, output) = await Cli.RunAsync("meshguard-cp", "--data", temp.Combine("data"), "--bind-address", "127.0.0.1",
            "--bootstrap-port", Text(ports[0]), "--grpc-port", Text(held), "--webhook-port", Text(ports[1]), "--admin-port", Text(ports[2]));

        Assert.Equal(1, exit);
        Assert.Equal($"meshguard-cp: --grpc-port {held}: 127.0.0.1:{held} is in use by another process", output.Trim().Split('\n')[^1]);
    }

    [Fact]
    public async Task TheControlPlaneRefusesToStartWithAKeyFileReadableByOthers()
    {
        using var temp = new TempDirectory();
        var data = temp.Combine("data");
        // First start creates the CA; it is stopped at once by an occupied port so the test needs no teardown.
        var ports = MeshGuard.Ctl.Demo.LocalMesh.FreePorts(3);
        using (var blocker = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, ports[2]))
        {
            blocker.Start();
            await Cli.RunAsync("meshguard-cp", "--data", data, "--bootstrap-port", ports[0].ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--grpc-port", ports[1].ToString(System.Globalization.CultureInfo.InvariantCulture), "--admin-port", ports[2].ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        var key = Path.Combine(data, "ca", "root.key");
        Assert.True(File.Exists(key));
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var (exit, output) = await Cli.RunAsync("meshguard-cp", "--data", data, "--admin-port", "0", "--bootstrap-port", "0", "--grpc-port", "0");
        Assert.Equal(1, exit);
        Assert.Contains($"refusing to use key file {key}", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryFlagCanComeFromAMeshguardVariable()
    {
        var start = new System.Diagnostics.ProcessStartInfo(MeshBinaries.Of("meshguard-proxy"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["MESHGUARD_CP_BUNDLE"] = "/nonexistent/bundle.pem";
        start.Environment["MESHGUARD_JOIN_TOKEN"] = "mgjt_x";
        start.Environment["MESHGUARD_SERVICE"] = "orders";
        using var process = System.Diagnostics.Process.Start(start)!;
        var output = await process.StandardError.ReadToEndAsync() + await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.Equal(1, process.ExitCode);
        Assert.Contains("cannot read trust bundle /nonexistent/bundle.pem", output, StringComparison.Ordinal);
    }
}
