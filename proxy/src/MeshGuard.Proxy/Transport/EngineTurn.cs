using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Runtime.ExceptionServices;

namespace MeshGuard.Proxy.Transport;

/// <summary>
/// Runs a short job on a socket engine thread at that thread's next turn of its event loop, where a connection would
/// otherwise hand it to the thread pool: the deferred writes of <see cref="Http2.Http2FrameQueue.FlushSoon"/>. A job
/// queued while the engine thread is busy with a read's events runs after them, so the writes those events queued go
/// out together, on the thread that queued them, with no other thread woken. The engine is told through a datagram
/// socket connected to itself, registered with the engine like any other: one octet sent when the first job of a
/// turn is queued makes the socket readable, the engine's next wait returns at once (or wakes it, when a job comes
/// from another thread) and the receive's continuation runs the jobs on the engine thread (inline completions,
/// <see cref="SocketCompletions"/>). A connected Unix datagram socket takes datagrams from its peer only (any other
/// sender gets EPERM), here itself.
/// <para>
/// Against the thread pool (measured on the pair, wrk -c32, 6 interleaved rounds): a thread-pool item woke a worker
/// through the pool's semaphore (its mutex and condition variable) and the woken worker, finding work, woke a second
/// one that found none; per request and sidecar futex calls 0.52-0.62 -> 0.07, context switches 0.62-0.71 ->
/// 0.28-0.39, CPU per request -11 % (sidecar 37.5 -> 33.5 us), requests per second even. A thread of its own woken
/// through a futex word took the futex calls down by a quarter and left the context switches and CPU as they were.
/// </para>
/// Without inline completions the receive's continuation would itself be a thread-pool item, so jobs then go to the
/// thread pool directly. As on the thread pool, an exception a job lets out ends the process.
/// </summary>
internal sealed class EngineTurn : IDisposable
{
    // One for each engine thread; the runtime registers sockets with its engines in turn, so created together they
    // land on different engines. A job queued on an engine thread that runs a turn's loop goes to that one.
    private static readonly Lazy<EngineTurn[]> Turns = new(() =>
    {
        var turns = new EngineTurn[SocketCompletions.EngineCount];
        for (var i = 0; i < turns.Length; i++)
        {
            turns[i] = new EngineTurn();
        }
        return turns;
    });

    [ThreadStatic]
    private static EngineTurn? t_running;

    private static int s_next;

    private readonly ConcurrentQueue<IThreadPoolWorkItem> _jobs = new();
    private readonly UnixDomainSocketEndPoint _self = new("\0meshguard-turn-" + Guid.NewGuid().ToString("N"));
    private readonly Socket _signal;
    private readonly byte[] _octet = [1];
    private readonly byte[] _received = new byte[16];
    private int _signalled;
    private int _closed;

    internal EngineTurn()
    {
        _signal = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        try
        {
            _signal.Bind(_self);
            _signal.Connect(_self);
        }
        catch
        {
            _signal.Dispose();
            throw;
        }
        _ = RunAsync();
    }

    /// <summary>The signal socket's own address (abstract): a test sends to it from elsewhere.</summary>
    internal EndPoint SignalAddress => _self;

    /// <summary>
    /// Runs <paramref name="job"/> at an engine thread's next turn when socket completions run inline (on the calling
    /// engine thread's own turn if it has one), on the thread pool otherwise.
    /// </summary>
    public static void Defer(IThreadPoolWorkItem job)
    {
        if (!SocketCompletions.Inline)
        {
            ThreadPool.UnsafeQueueUserWorkItem(job, preferLocal: false);
            return;
        }
        var turn = t_running;
        if (turn is null)
        {
            var turns = Turns.Value;
            turn = turns[(int)((uint)Interlocked.Increment(ref s_next) % (uint)turns.Length)];
        }
        turn.Start(job);
    }

    /// <summary>Runs <paramref name="job"/> at the next turn, after the jobs queued before it.</summary>
    public void Start(IThreadPoolWorkItem job)
    {
        _jobs.Enqueue(job);
        if (Volatile.Read(ref _closed) != 0)
        {
            // Closed after the loop's last look at the queue, or before: either way the thread pool takes it.
            HandQueuedToThreadPool();
            return;
        }
        // One octet a turn: the flag is cleared when the turn begins, before it takes the jobs.
        if (Interlocked.Exchange(ref _signalled, 1) == 0)
        {
            try
            {
                _signal.Send(_octet);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                Close();
            }
        }
    }

    public void Dispose()
    {
        _signal.Dispose();
        Close();
    }

    /// <summary>No more turns: what is queued and what comes goes to the thread pool.</summary>
    private void Close()
    {
        Interlocked.Exchange(ref _closed, 1);
        HandQueuedToThreadPool();
    }

    private async Task RunAsync()
    {
        try
        {
            while (true)
            {
                await _signal.ReceiveAsync(_received.AsMemory(), SocketFlags.None);
                t_running = this;
                Volatile.Write(ref _signalled, 0);
                RunQueued();
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Close();
        }
    }

    /// <summary>The turn: every job queued, on this thread.</summary>
    private void RunQueued()
    {
        while (_jobs.TryDequeue(out var job))
        {
            try
            {
                job.Execute();
            }
            catch (Exception e)
            {
                var thrown = ExceptionDispatchInfo.Capture(e);
                ThreadPool.UnsafeQueueUserWorkItem(static state => ((ExceptionDispatchInfo)state!).Throw(), thrown);
            }
        }
    }

    /// <summary>Closed: every job queued goes to the thread pool.</summary>
    private void HandQueuedToThreadPool()
    {
        while (_jobs.TryDequeue(out var job))
        {
            ThreadPool.UnsafeQueueUserWorkItem(job, preferLocal: false);
        }
    }
}
