namespace MeshGuard.Proxy.Transport;

/// <summary>
/// Runs what a socket operation's completion continues with on the socket engine's own thread, instead of queueing it
/// to the thread pool. The sidecar's own readers (the mesh connection's frame reader, the app connection's answer
/// reader, the opaque-TCP copy loops) then go on from the epoll thread that saw the bytes: one thread hop and most of
/// its wake-up less per read. Kestrel's listeners run inline too (<c>UnsafePreferInlineScheduling</c>, SidecarHost), which
/// paid only once the engine threads were halved (ARCHITECTURE.md). Nothing that runs on those threads may block: the
/// sidecar's readers only parse, copy and hand on.
/// <para>
/// Engine threads: one for every two cores (at least one), where the runtime opens one per core when completions run
/// inline. A request's reads then meet on fewer threads: the mesh connection's reader and the app connection's answer
/// reader of one exchange no longer wake each other across engines. Measured on 2 cores (wrk -c32 through the pair,
/// 7 interleaved rounds): 25,508 against 22,929 rps, CPU-s per 10k requests 0.192 against 0.225 inbound and 0.225
/// against 0.250 outbound, context switches per request 0.60 against 1.02 inbound and 1.08 against 1.49 outbound;
/// 1 MiB downloads and p99 at 1,000 rps even; an HTTP/2 client's 128 streams 4 % fewer requests a second.
/// </para>
/// The runtime reads both switches once, when the first socket registers with an engine; an operator's own
/// <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS</c> (0 or 1) and <c>DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT</c> win.
/// </summary>
internal static class SocketCompletions
{
    internal const string Switch = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    internal const string EngineCountSwitch = "DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT";

    /// <summary>What <see cref="RunInlineUnlessConfigured"/> chose, for the start-up line: "inline" or "thread-pool".</summary>
    internal static string Decision { get; private set; } = "thread-pool";

    /// <summary>The engine threads asked of the runtime, for the start-up line: a count, or "runtime" for its own rule.</summary>
    internal static string Engines { get; private set; } = "runtime";

    /// <summary>Whether socket completions run on the engine threads (<see cref="EngineTurn"/> needs them to).</summary>
    internal static bool Inline { get; private set; }

    /// <summary>The engine threads the runtime runs: the count asked, or the runtime's own (one per core).</summary>
    internal static int EngineCount =>
        int.TryParse(Engines, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var engines) && engines > 0
            ? engines : Environment.ProcessorCount;

    /// <summary>One engine for every two cores, at least one.</summary>
    internal static int EnginesFor(int processors) => Math.Max(1, processors / 2);

    /// <summary>Called first thing in Main, before any socket exists.</summary>
    internal static void RunInlineUnlessConfigured()
    {
        if (Environment.GetEnvironmentVariable(Switch) is not { } configured)
        {
            Environment.SetEnvironmentVariable(Switch, configured = "1");
        }
        Inline = configured == "1";
        Decision = Inline ? "inline" : "thread-pool";
        if (Environment.GetEnvironmentVariable(EngineCountSwitch) is { } engines)
        {
            Engines = engines;
        }
        else if (Decision == "inline")
        {
            Engines = EnginesFor(Environment.ProcessorCount).ToString(System.Globalization.CultureInfo.InvariantCulture);
            Environment.SetEnvironmentVariable(EngineCountSwitch, Engines);
        }
    }
}
