using System.Globalization;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A sidecar checks every peer against the mesh's bundle, so it has no use for the machine's public CA store, which
/// .NET on Linux would otherwise read (about 150 files, twice) at the first chain build of the start. It reads none of
/// it, unless something of it needs the store: an OTLP endpoint over TLS. The proof is the files a starting sidecar
/// opens, traced by strace from its first instruction to its readiness.
/// </summary>
[Collection(nameof(MeshCollection))]
public sealed class SystemTrustStoreTests(MeshFixture mesh)
{
    [Fact]
    public async Task AStartingSidecarReadsNoFileOfTheSystemCaStore()
    {
        var (opened, log) = await OpenedDuringStartAsync("trust-probe", environment: null);

        // The trace covers the start: the sidecar read the mesh's bundle it was given.
        var bundle = mesh.Mesh.ControlPlane!.BundleFile;
        Assert.Contains(opened, path => path == bundle);
        Assert.DoesNotContain(opened, IsSystemStore);
        Assert.Contains("system-ca-store=off", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ASidecarExportingOverTlsKeepsTheSystemCaStore()
    {
        // Nothing listens on port 9: the exporter fails in the background; the sidecar serves all the same.
        var (opened, log) = await OpenedDuringStartAsync("trust-probe-otlp", new Dictionary<string, string> { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "https://127.0.0.1:9" });

        Assert.Contains(opened, IsSystemStore);
        Assert.Contains("system-ca-store=kept (OTEL_EXPORTER_OTLP_ENDPOINT is not plain http)", log, StringComparison.Ordinal);
    }

    /// <summary>The paths the sidecar's threads opened from its start until it was ready (then it is stopped), and its log.</summary>
    private async Task<(List<string> Opened, string Log)> OpenedDuringStartAsync(string name, IDictionary<string, string>? environment)
    {
        using var temp = new TempDirectory();
        var trace = temp.Combine("open.trace");
        // -I1: the tracer passes signals on; -f: every thread of the sidecar.
        var service = await mesh.Mesh.StartSidecarAsync(name, mesh.OrdersApp.Port, environment: environment,
            launcher: ["strace", "-f", "-qq", "-I1", "-e", "trace=open,openat,openat2", "-o", trace]);
        var tracer = service.Sidecar!;
        var sidecar = int.Parse(File.ReadAllText($"/proc/{tracer.Id}/task/{tracer.Id}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
        // Stopped by its own id: the tracer ends when it does, and its trace is then whole.
        var (exit, output) = await ExternalProcess.RunAsync("/bin/kill", ["-TERM", sidecar.ToString(CultureInfo.InvariantCulture)]);
        Assert.True(exit == 0, output);
        Assert.True(await Eventually.TrueAsync(() => tracer.HasExited, TimeSpan.FromSeconds(20)), "the traced sidecar did not stop");
        var opened = new List<string>();
        foreach (var line in File.ReadLines(trace))
        {
            // 1234 openat(AT_FDCWD, "/path", O_RDONLY|O_CLOEXEC) = 7
            var start = line.IndexOf('"', StringComparison.Ordinal);
            var end = start < 0 ? -1 : line.IndexOf('"', start + 1);
            if (end > start)
            {
                opened.Add(line[(start + 1)..end]);
            }
        }
        Assert.NotEmpty(opened);
        return (opened, tracer.ReadLog());
    }

    /// <summary>Debian's CA file and hashed directory (OpenSSL's defaults, /usr/lib/ssl/certs, link there).</summary>
    private static bool IsSystemStore(string path) =>
        path.StartsWith("/etc/ssl/certs", StringComparison.Ordinal) || path.StartsWith("/usr/lib/ssl/cert", StringComparison.Ordinal)
        || path.StartsWith("/usr/share/ca-certificates", StringComparison.Ordinal);
}
