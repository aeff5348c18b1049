using MeshGuard.FlowLog;

namespace MeshGuard.Proxy.FlowLog;

/// <summary>
/// A fixed ring of flow records between the request handlers (many producers) and the background writer
/// (one consumer). Enqueueing takes no lock and allocates nothing: a producer claims a position with one
/// compare-and-swap and publishes the slot with its sequence number (the bounded-queue scheme of D. Vyukov).
/// A full ring answers false at once; the caller counts the loss.
/// </summary>
internal sealed class FlowRecordQueue
{
    private struct Slot
    {
        // Equal to the position it waits for a producer at; position + 1 once published; position + capacity once read.
        public long Sequence;
        public FlowRecord Record;
    }

    private readonly Slot[] _slots;
    private readonly int _capacity;
    private PaddedPosition _enqueue;
    private long _dequeue; // the consumer's alone
    private TaskCompletionSource? _consumerWaiting; // set while the consumer waits for a record

    public FlowRecordQueue(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
        _slots = new Slot[capacity];
        for (var i = 0; i < capacity; i++)
        {
            _slots[i].Sequence = i;
        }
    }

    public int Capacity => _capacity;

    /// <summary>Any number of threads at once. False when the ring is full.</summary>
    public bool TryEnqueue(in FlowRecord record)
    {
        var position = Volatile.Read(ref _enqueue.Value);
        while (true)
        {
            ref var slot = ref _slots[position % _capacity];
            var sequence = Volatile.Read(ref slot.Sequence);
            var lag = sequence - position;
            if (lag == 0)
            {
                var seen = Interlocked.CompareExchange(ref _enqueue.Value, position + 1, position);
                if (seen == position)
                {
                    slot.Record = record;
                    Volatile.Write(ref slot.Sequence, position + 1);
                    // The publication before the look at the waiter (a full fence): either the consumer, parking, sees
                    // this record, or this producer sees it parked.
                    Interlocked.MemoryBarrier();
                    if (Volatile.Read(ref _consumerWaiting) is not null)
                    {
                        WakeConsumer();
                    }
                    return true;
                }
                position = seen;
            }
            else if (lag < 0)
            {
                return false; // the consumer has not yet read the record a full lap ago
            }
            else
            {
                position = Volatile.Read(ref _enqueue.Value); // another producer took this position
            }
        }
    }

    /// <summary>
    /// The writer thread only: returns once a record is published, <paramref name="limit"/> has passed (never when it is
    /// <see cref="Timeout.InfiniteTimeSpan"/>), or
    /// <paramref name="cancellation"/> (then throws). A producer that publishes while the writer waits wakes it through
    /// the thread pool, never running the writer on its own thread; while records keep coming the writer does not
    /// wait here, and producers only look at one field.
    /// </summary>
    public async Task WaitForRecordAsync(TimeSpan limit, TimeProvider time, CancellationToken cancellation)
    {
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.Exchange(ref _consumerWaiting, waiting);
        if (HasPublished)
        {
            Interlocked.Exchange(ref _consumerWaiting, null);
            return;
        }
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var clock = Task.Delay(limit == Timeout.InfiniteTimeSpan || limit > TimeSpan.Zero ? limit : TimeSpan.Zero, time, stop.Token);
        await Task.WhenAny(waiting.Task, clock).ConfigureAwait(false);
        Interlocked.Exchange(ref _consumerWaiting, null);
        await stop.CancelAsync().ConfigureAwait(false);
        cancellation.ThrowIfCancellationRequested();
    }

    private bool HasPublished => Volatile.Read(ref _slots[_dequeue % _capacity].Sequence) == _dequeue + 1;

    private void WakeConsumer() => Interlocked.Exchange(ref _consumerWaiting, null)?.TrySetResult();

    /// <summary>The writer thread only. False when nothing published is waiting.</summary>
    public bool TryDequeue(out FlowRecord record)
    {
        ref var slot = ref _slots[_dequeue % _capacity];
        if (Volatile.Read(ref slot.Sequence) != _dequeue + 1)
        {
            record = default;
            return false;
        }
        record = slot.Record;
        slot.Record = default; // let the strings it held go
        Volatile.Write(ref slot.Sequence, _dequeue + _capacity);
        _dequeue++;
        return true;
    }

    // Keeps the producers' counter on its own cache line, away from the consumer's.
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 128)]
    private struct PaddedPosition
    {
        [System.Runtime.InteropServices.FieldOffset(64)]
        public long Value;
    }
}
