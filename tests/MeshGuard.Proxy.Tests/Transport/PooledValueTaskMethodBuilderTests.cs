using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using MeshGuard.Proxy.Transport;

namespace MeshGuard.Proxy.Tests.Transport;

public sealed class PooledValueTaskMethodBuilderTests
{
    /// <summary>A wait the test ends by hand, on its own thread: the method's next step runs inside <see cref="Complete"/>.</summary>
    private sealed class Gate : IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core;

        public ValueTask<int> WaitAsync() => new(this, _core.Version);

        public void Complete(int value) => _core.SetResult(value);

        public int GetResult(short token)
        {
            var result = _core.GetResult(token);
            _core.Reset();
            return result;
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private static async ValueTask<int> AddAfterAsync(Gate gate, int addend) => await gate.WaitAsync() + addend;

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private static async ValueTask<int> SyncAsync(int value)
    {
        await Task.CompletedTask;
        return value;
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private static async ValueTask<int> ThrowAsync(Gate? gate)
    {
        if (gate is not null)
        {
            await gate.WaitAsync();
        }
        throw new InvalidOperationException("thrown " + (gate is null ? "before" : "after") + " a wait");
    }

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private static async ValueTask<int> YieldingAsync(int value)
    {
        await Task.Yield();
        await Task.Delay(1);
        return value * 2;
    }

    private static readonly AsyncLocal<string?> Ambient = new();

    [AsyncMethodBuilder(typeof(PooledValueTaskMethodBuilder<>))]
    private static async ValueTask<string?> ReadAmbientAfterAHopAsync()
    {
        await Task.Yield();
        var seen = Ambient.Value;
        Ambient.Value = "set inside";
        return seen;
    }

    /// <summary>The result of a call the test has just let finish, taken as an awaiter would (once, which returns its box).</summary>
    private static int Completed(ValueTask<int> call)
    {
        Assert.True(call.IsCompleted);
        return call.Result;
    }

    [Fact]
    public async Task AMethodThatNeverWaitsAnswersItsResult()
    {
        Assert.Equal(7, await SyncAsync(7));
    }

    [Fact]
    public async Task AMethodThatWaitsAnswersItsResultOnceResumed()
    {
        var gate = new Gate();
        var pending = AddAfterAsync(gate, 2);
        Assert.False(pending.IsCompleted);
        gate.Complete(40);
        Assert.Equal(42, await pending);
    }

    [Fact]
    public async Task CallsOneAfterAnotherReuseOneBoxInsteadOfAllocating()
    {
        // On a pool thread: no synchronization context, so each call's next step runs inside Complete, on this thread.
        var allocated = await Task.Run(() =>
        {
            var gate = new Gate();
            // The first calls make the box (and the runtime its first-use state); the measured calls take it from the pool.
            for (var i = 0; i < 10; i++)
            {
                var warm = AddAfterAsync(gate, i);
                gate.Complete(i);
                Assert.Equal(2 * i, Completed(warm));
            }
            var wrong = 0;
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 1000; i++)
            {
                var call = AddAfterAsync(gate, 1);
                gate.Complete(i);
                // Compared by hand: an assertion per call would allocate more than what is measured.
                wrong += call.IsCompleted && call.Result == i + 1 ? 0 : 1;
            }
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(0, wrong);
            return allocated;
        });
        // A box each would be over 100 KB for 1000 calls.
        Assert.True(allocated < 4_000, $"{allocated} B allocated by 1000 calls");
    }

    /// <summary>
    /// The case the runtime's pooling builder misses (one box per thread and per core): many calls waiting at once, as
    /// the streams a peer's HEADERS frames start together. A second burst takes the boxes the first gave back.
    /// </summary>
    [Fact]
    public async Task ABurstOfCallsWaitingTogetherTakesTheBoxesTheLastBurstGaveBack()
    {
        const int Burst = 64;
        var allocated = await Task.Run(() =>
        {
            var gates = Enumerable.Range(0, Burst).Select(_ => new Gate()).ToArray();
            var calls = new ValueTask<int>[Burst];
            long RunBurst()
            {
                var wrong = 0;
                var before = GC.GetAllocatedBytesForCurrentThread();
                for (var i = 0; i < Burst; i++)
                {
#pragma warning disable CA2012 // each is taken once, below, after its gate opened
                    calls[i] = AddAfterAsync(gates[i], 1);
#pragma warning restore CA2012
                }
                for (var i = 0; i < Burst; i++)
                {
                    gates[i].Complete(i);
                    wrong += calls[i].IsCompleted && calls[i].Result == i + 1 ? 0 : 1;
                }
                var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                Assert.Equal(0, wrong);
                return allocated;
            }
            RunBurst();
            return RunBurst();
        });
        Assert.True(allocated < 1_000, $"{allocated} B allocated by a second burst of {Burst} calls");
    }

    [Fact]
    public async Task AnExceptionBeforeOrAfterTheFirstWaitReachesTheAwaiter()
    {
        var before = await Assert.ThrowsAsync<InvalidOperationException>(async () => await ThrowAsync(null));
        Assert.Equal("thrown before a wait", before.Message);
        var gate = new Gate();
        var pending = ThrowAsync(gate);
        gate.Complete(0);
        var after = await Assert.ThrowsAsync<InvalidOperationException>(async () => await pending);
        Assert.Equal("thrown after a wait", after.Message);
        // The box that carried the exception serves the next call.
        var next = AddAfterAsync(gate, 1);
        gate.Complete(1);
        Assert.Equal(2, await next);
    }

    [Fact]
    public async Task TheCallersAsyncLocalsFlowInAndTheMethodsOwnDoNotLeakOut()
    {
        Ambient.Value = "caller's";
        var seen = await ReadAmbientAfterAHopAsync();
        Assert.Equal("caller's", seen);
        Assert.Equal("caller's", Ambient.Value);
    }

    [Fact]
    public async Task ManyCallsAtOnceOnManyThreadsEachAnswerTheirOwnResult()
    {
        var calls = Enumerable.Range(0, 2000).Select(i => Task.Run(async () => await YieldingAsync(i))).ToArray();
        var results = await Task.WhenAll(calls);
        Assert.Equal(Enumerable.Range(0, 2000).Select(i => i * 2), results);
    }
}
