using System.Globalization;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A sidecar continues a socket read on the socket engine's own thread rather than queueing it to the thread pool (one
/// hop less per read; figures in ARCHITECTURE.md): the runtime then runs one engine thread per core. An operator's own
/// setting of the runtime's switch wins. The proof is the engine threads of the running process and its start-up line.
/// </summary>
[Collection(nameof(MeshCollection))]
public sealed class SocketCompletionsTests(MeshFixture mesh)
{
    private const string EngineThread = ".NET Sockets";

    [Fact]
    public async Task ASidecarContinuesSocketReadsOnOneEngineThreadPerCore()
    {
        var (engines, log) = await EngineThreadsOfAsync("completions-inline", environment: null);

        Assert.Equal(Environment.ProcessorCount, engines);
        Assert.Contains("socket-completions=inline", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnOperatorsSwitchSetToZeroKeepsSocketCompletionsOnTheThreadPool()
    {
        var (engines, log) = await EngineThreadsOfAsync("completions-pool",
            new Dictionary<string, string> { ["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"] = "0" });

        // The runtime's own default: one engine for up to 30 cores.
        Assert.Equal(Math.Max(1, (int)Math.Round(Environment.ProcessorCount / 30.0)), engines);
        Assert.Contains("socket-completions=thread-pool", log, StringComparison.Ordinal);
    }

    /// <summary>The socket engine threads of a started, ready sidecar (the runtime makes them all at the first socket); its log.</summary>
    private async Task<(int Engines, string Log)> EngineThreadsOfAsync(string name, IDictionary<string, string>? environment)
    {
        var service = await mesh.Mesh.StartSidecarAsync(name, mesh.OrdersApp.Port, environment: environment);
        var process = service.Sidecar!;
        try
        {
            var tasks = Directory.GetDirectories($"/proc/{process.Id.ToString(CultureInfo.InvariantCulture)}/task");
            var engines = tasks.Count(task => File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n') == EngineThread);
            return (engines, process.ReadLog());
        }
        finally
        {
            Assert.True(await process.StopAsync(TimeSpan.FromSeconds(10)), $"{name} had to be killed");
        }
    }
}
