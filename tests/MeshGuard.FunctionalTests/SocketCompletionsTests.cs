using System.Globalization;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A sidecar continues a socket read on the socket engine's own thread rather than queueing it to the thread pool (one
/// hop less per read; figures in ARCHITECTURE.md), on one engine thread for every two cores (the runtime's own rule would
/// be one per core), and the writes a connection defers run at an engine thread's next turn (Transport/EngineTurn)
/// rather than on the thread pool. An operator's own settings of the runtime's switches win. The proof is the engine
/// threads of the running process and its start-up line.
/// </summary>
[Collection(nameof(MeshCollection))]
public sealed class SocketCompletionsTests(MeshFixture mesh)
{
    private const string EngineThread = ".NET Sockets";

    [Fact]
    public async Task ASidecarContinuesSocketReadsInlineOnOneEngineThreadForEveryTwoCores()
    {
        var (engines, log) = await EngineThreadsOfAsync("completions-inline", environment: null);

        var expected = Math.Max(1, Environment.ProcessorCount / 2);
        Assert.Equal(expected, engines);
        Assert.Contains("socket-completions=inline", log, StringComparison.Ordinal);
        Assert.Contains($"socket-engines={expected.ToString(CultureInfo.InvariantCulture)} deferred-writes=engine-turn", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnOperatorsEngineCountWins()
    {
        var (engines, log) = await EngineThreadsOfAsync("completions-engines",
            new Dictionary<string, string> { ["DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT"] = "3" });

        Assert.Equal(3, engines);
        Assert.Contains("socket-engines=3", log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnOperatorsSwitchSetToZeroKeepsSocketCompletionsOnTheThreadPool()
    {
        var (engines, log) = await EngineThreadsOfAsync("completions-pool",
            new Dictionary<string, string> { ["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"] = "0" });

        // The runtime's own default: one engine for up to 30 cores.
        Assert.Equal(Math.Max(1, (int)Math.Round(Environment.ProcessorCount / 30.0)), engines);
        Assert.Contains("socket-completions=thread-pool socket-engines=runtime deferred-writes=thread-pool", log, StringComparison.Ordinal);
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
