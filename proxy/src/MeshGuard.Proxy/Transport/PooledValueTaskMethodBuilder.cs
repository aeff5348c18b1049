using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace MeshGuard.Proxy.Transport;

/// <summary>
/// An async method builder for the data path's per-request async methods whose state machine boxes come from a
/// bounded pool per method, sized for the requests in flight. The runtime's pooling builder keeps one box per thread
/// and one per core: a peer's HTTP/2 connection starts streams in bursts (one read, many HEADERS frames), so a burst
/// emptied those slots and most boxes were allocated anew (measured: the two legs' boxes were a third of the sidecars'
/// allocated bytes at 32 requests in flight). The method's <see cref="ValueTask{TResult}"/> must be awaited exactly
/// once, as every pooled value task: its box goes back to the pool when the result is taken.
/// </summary>
internal struct PooledValueTaskMethodBuilder<TResult>
{
    private PooledBox<TResult>? _box;
    private TResult _result;
    private Exception? _exception;

    public static PooledValueTaskMethodBuilder<TResult> Create() => default;

    public readonly ValueTask<TResult> Task =>
        _box is { } box ? new(box, box.Version)
        : _exception is { } exception ? ValueTask.FromException<TResult>(exception)
        : new(_result);

#pragma warning disable CA1822 // the compiler calls Start and SetStateMachine on the builder instance
    // Start runs the first step under the caller's execution context and restores it after: builder-independent work.
    public readonly void Start<TStateMachine>(ref TStateMachine stateMachine)
        where TStateMachine : IAsyncStateMachine => AsyncValueTaskMethodBuilder<TResult>.Create().Start(ref stateMachine);

    public readonly void SetStateMachine(IAsyncStateMachine stateMachine)
    {
    }
#pragma warning restore CA1822

    public void SetResult(TResult result)
    {
        if (_box is { } box)
        {
            box.SetResult(result); // nothing may touch this builder after: the box may be in another call's hands now
        }
        else
        {
            _result = result;
        }
    }

    public void SetException(Exception exception)
    {
        if (_box is { } box)
        {
            box.SetException(exception);
        }
        else
        {
            _exception = exception; // failed before its first wait: a rare path, a faulted task of its own
        }
    }

    public void AwaitOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : INotifyCompletion where TStateMachine : IAsyncStateMachine =>
        awaiter.OnCompleted(BoxFor(ref stateMachine).MoveNextAction);

    public void AwaitUnsafeOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : ICriticalNotifyCompletion where TStateMachine : IAsyncStateMachine =>
        awaiter.UnsafeOnCompleted(BoxFor(ref stateMachine).MoveNextAction);

    /// <summary>The box that runs the method's next step: at its first wait, one from the pool, holding the state machine (and so this builder).</summary>
    private PooledBox<TResult> BoxFor<TStateMachine>(ref TStateMachine stateMachine)
        where TStateMachine : IAsyncStateMachine
    {
        if (_box is { } box)
        {
            box.CaptureContext();
            return box;
        }
        var typed = PooledBox<TResult>.Of<TStateMachine>.Rent();
        _box = typed; // set before the copy below, so that the boxed state machine's builder names its box
        typed.StateMachine = stateMachine;
        typed.CaptureContext();
        return typed;
    }
}

/// <summary>A pooled state machine box: the value-task source of one call at a time, returned to its pool when its result is taken.</summary>
internal abstract class PooledBox<TResult> : IValueTaskSource<TResult>
{
    private ManualResetValueTaskSourceCore<TResult> _core;
    private ExecutionContext? _context;

    protected PooledBox()
    {
        MoveNextAction = RunStep;
    }

    /// <summary>The continuation handed to awaiters: one delegate per box for its whole life.</summary>
    public Action MoveNextAction { get; }

    public short Version => _core.Version;

    internal void CaptureContext() => _context = ExecutionContext.Capture();

    private void RunStep()
    {
        if (_context is { } context)
        {
            ExecutionContext.Run(context, static box => ((PooledBox<TResult>)box!).MoveNext(), this);
        }
        else
        {
            MoveNext();
        }
    }

    protected abstract void MoveNext();

    /// <summary>Clears the state machine (what it references must not outlive the call) and hands the box back.</summary>
    protected abstract void Recycle();

    internal void SetResult(TResult result) => _core.SetResult(result);

    internal void SetException(Exception exception) => _core.SetException(exception);

    public TResult GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _context = null;
            _core.Reset();
            Recycle();
        }
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    /// <summary>The box of one async method: a bounded pool of them, shared by every thread.</summary>
    internal sealed class Of<TStateMachine> : PooledBox<TResult>
        where TStateMachine : IAsyncStateMachine
    {
        // Enough for the requests a sidecar commonly has in flight; beyond, boxes are allocated and dropped. A lock
        // over a stack: held for a few instructions, and on two cores rarely contended.
        private static readonly Of<TStateMachine>[] Free = new Of<TStateMachine>[256];
        private static readonly Lock Gate = new();
        private static int _freeCount;

        public TStateMachine StateMachine = default!;

        public static Of<TStateMachine> Rent()
        {
            lock (Gate)
            {
                if (_freeCount > 0)
                {
                    var box = Free[--_freeCount];
                    Free[_freeCount] = null!;
                    return box;
                }
            }
            return new Of<TStateMachine>();
        }

        protected override void MoveNext() => StateMachine.MoveNext();

        protected override void Recycle()
        {
            StateMachine = default!;
            lock (Gate)
            {
                if (_freeCount < Free.Length)
                {
                    Free[_freeCount++] = this;
                }
            }
        }
    }
}
