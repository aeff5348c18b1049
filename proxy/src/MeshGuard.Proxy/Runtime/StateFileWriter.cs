using MeshGuard.Contracts;

namespace MeshGuard.Proxy.Runtime;

/// <summary>
/// Writes the files of the sidecar's state directory (the SVID with its key, the trust bundle, the last snapshot, the
/// control plane's gRPC addresses) on a thread of its own. Each file is replaced atomically and flushed to the disk
/// (<see cref="SecureFile.WriteAtomically"/>), and a flush to a busy disk can take seconds: once 24 s for one small
/// file, while container images were being written beside the sidecar. Those writes came from the sidecar's start, the
/// SVID renewal and the snapshot stream, whose code goes on from socket completions on the socket engine's one thread
/// (Transport/SocketCompletions): a wait there held every connection of the sidecar, and at start it let a short-lived
/// SVID expire before the sidecar was ready. A caller only queues the contents now and never waits on the disk.
/// <para>
/// Files are written in the order they were first queued (an SVID's key before its chain, so a chain on disk always
/// has its key); newer contents for a file still queued replace the older in their place. The process's end, graceful
/// or a failed start, waits for the queue (<see cref="Dispose"/>, at most <see cref="StopDeadline"/>): an SVID attested
/// with a one-time join token must be on disk for a restart to resume with it. A write that fails is logged with the
/// file and the reason, and counted; the next contents of that file are written as usual.
/// </para>
/// </summary>
internal sealed partial class StateFileWriter(ILogger logger) : IDisposable
{
    /// <summary>How long the process's end waits for the queue to be written.</summary>
    public static readonly TimeSpan StopDeadline = TimeSpan.FromSeconds(10);

    private readonly object _gate = new();
    private readonly List<Pending> _queue = [];
    private Thread? _thread;
    private bool _writing;
    private long _failed;

    /// <summary>Set by tests to hold the writer as a slow disk would: each write waits for it first.</summary>
    internal SemaphoreSlim? Gate { get; set; }

    /// <summary>Files whose write failed since the start.</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Queues <paramref name="contents"/> for <paramref name="path"/> (0600 when <paramref name="secret"/>); returns at once.</summary>
    public void Write(string path, string contents, bool secret)
    {
        lock (_gate)
        {
            var index = _queue.FindIndex(p => string.Equals(p.Path, path, StringComparison.Ordinal));
            if (index >= 0)
            {
                _queue[index] = new Pending(path, contents, secret);
            }
            else
            {
                _queue.Add(new Pending(path, contents, secret));
            }
            if (_thread is null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "meshguard-state-files" };
                _thread.Start();
            }
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Waits until every file queued so far is written (or failed); false when <paramref name="timeout"/> passed first.</summary>
    public bool Flush(TimeSpan timeout)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        lock (_gate)
        {
            while (_queue.Count > 0 || _writing)
            {
                var left = deadline - Environment.TickCount64;
                if (left <= 0)
                {
                    return false;
                }
                Monitor.Wait(_gate, TimeSpan.FromMilliseconds(left));
            }
            return true;
        }
    }

    /// <summary>What is queued reaches the disk before the process ends, if the disk lets it within <see cref="StopDeadline"/>.</summary>
    public void Dispose()
    {
        if (!Flush(StopDeadline))
        {
            LogNotFlushed(logger, StopDeadline.TotalSeconds);
        }
    }

    private void Run()
    {
        while (true)
        {
            Pending next;
            lock (_gate)
            {
                while (_queue.Count == 0)
                {
                    _writing = false;
                    Monitor.PulseAll(_gate);
                    Monitor.Wait(_gate);
                }
                next = _queue[0];
                _queue.RemoveAt(0);
                _writing = true;
            }
            if (Gate is { } gate)
            {
                gate.Wait();
                gate.Release();
            }
            try
            {
                SecureFile.WriteAtomically(next.Path, next.Contents, next.Secret);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Interlocked.Increment(ref _failed);
                LogFailed(logger, next.Path, e.Message);
            }
        }
    }

    private readonly record struct Pending(string Path, string Contents, bool Secret);

    [LoggerMessage(EventId = 31, Level = LogLevel.Warning, Message = "the state directory was not written within {Seconds} s of the end; a restart may find an older SVID or snapshot there")]
    private static partial void LogNotFlushed(ILogger logger, double seconds);

    [LoggerMessage(EventId = 30, Level = LogLevel.Warning, Message = "could not write {Path} in the state directory ({Reason}); the sidecar goes on with what it holds in memory")]
    private static partial void LogFailed(ILogger logger, string path, string reason);
}
