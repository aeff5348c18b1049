using System.Globalization;
using System.Text.RegularExpressions;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A sidecar that is serving gives back the pages of its executable only its start read (Runtime/StartupMemory), once
/// its start has settled, says how many, and goes on serving: pages it uses again come back from the page cache.
/// </summary>
[Collection(nameof(MeshCollection))]
public sealed partial class StartupMemoryTests(MeshFixture mesh)
{
    [Fact]
    public async Task AServingSidecarReleasesTheStartsPagesOfItsExecutableAndGoesOnServing()
    {
        var service = await mesh.Mesh.StartSidecarAsync("startup-memory", mesh.OrdersApp.Port);
        var process = service.Sidecar!;
        try
        {
            // Some seconds after the start (StartupMemory.Settle).
            Assert.True(await Eventually.TrueAsync(() => Released().IsMatch(process.ReadLog()), TimeSpan.FromSeconds(30)),
                "the sidecar never said it released the start's pages");
            var released = Released().Match(process.ReadLog());
            Assert.True(long.Parse(released.Groups[1].Value, CultureInfo.InvariantCulture) > 0, released.Value);

            using var client = new HttpClient();
            var metrics = await client.GetStringAsync(new Uri($"http://127.0.0.1:{service.MetricsPort.ToString(CultureInfo.InvariantCulture)}/metrics"));
            Assert.Contains("dotnet_gc_heap_bytes", metrics, StringComparison.Ordinal);
        }
        finally
        {
            Assert.True(await process.StopAsync(TimeSpan.FromSeconds(10)), "the sidecar had to be killed");
        }
    }

    [GeneratedRegex(@"start-up-pages-released=(\d+)KiB")]
    private static partial Regex Released();
}
