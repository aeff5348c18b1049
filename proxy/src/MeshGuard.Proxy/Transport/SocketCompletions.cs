namespace MeshGuard.Proxy.Transport;

/// <summary>
/// Runs what a socket operation's completion continues with on the socket engine's own thread, instead of queueing it
/// to the thread pool. The sidecar's own readers (the mesh connection's frame reader, the app connection's answer
/// reader, the opaque-TCP copy loops) then go on from the epoll thread that saw the bytes: one thread hop and most of
/// its wake-up less per read. Kestrel's own pipes keep the thread pool (its <c>UnsafePreferInlineScheduling</c> stays
/// off): run inline too, every request of a listener ran on its epoll thread and the pair lost throughput (measured,
/// see ARCHITECTURE.md). The runtime reads the switch once, when the first socket registers with an engine, and then
/// opens one engine per core; an operator's own <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS</c> (0 or 1) wins.
/// Nothing that runs on those threads may block: the sidecar's readers only parse, copy and hand on.
/// </summary>
internal static class SocketCompletions
{
    internal const string Switch = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>What <see cref="RunInlineUnlessConfigured"/> chose, for the start-up line: "inline" or "thread-pool".</summary>
    internal static string Decision { get; private set; } = "thread-pool";

    /// <summary>Called first thing in Main, before any socket exists.</summary>
    internal static void RunInlineUnlessConfigured()
    {
        if (Environment.GetEnvironmentVariable(Switch) is not { } configured)
        {
            Environment.SetEnvironmentVariable(Switch, configured = "1");
        }
        Decision = configured == "1" ? "inline" : "thread-pool";
    }
}
