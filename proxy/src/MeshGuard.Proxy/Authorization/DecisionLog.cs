using MeshGuard.Policy.Engine;

namespace MeshGuard.Proxy.Authorization;

/// <summary>
/// The last inbound authorization decisions, for people (<c>/decisions</c> on the admin port): a fixed ring
/// of slots written in place, so recording allocates nothing. Each slot carries a sequence number that is
/// odd while it is being written, so a reader never returns a half-written entry.
/// </summary>
internal sealed class DecisionLog
{
    public const int Capacity = 256;

    private readonly Slot[] _slots = new Slot[Capacity];
    private long _next;

    private struct Slot
    {
        public long Sequence;
        public DecisionRecord Record;
    }

    public void Record(DateTimeOffset time, string caller, string method, string path, in Decision decision)
    {
        var index = Interlocked.Increment(ref _next) - 1;
        ref var slot = ref _slots[index % Capacity];
        var sequence = (index * 2) + 1;
        Volatile.Write(ref slot.Sequence, sequence);
        slot.Record = new DecisionRecord(time, caller, method, path, decision);
        Volatile.Write(ref slot.Sequence, sequence + 1);
    }

    /// <summary>Up to <paramref name="count"/> decisions, newest first.</summary>
    public List<DecisionRecord> Recent(int count)
    {
        var result = new List<DecisionRecord>(Math.Min(count, Capacity));
        var last = Volatile.Read(ref _next) - 1;
        for (var index = last; index >= 0 && index > last - Capacity && result.Count < count; index--)
        {
            ref var slot = ref _slots[index % Capacity];
            var expected = (index * 2) + 2;
            if (Volatile.Read(ref slot.Sequence) != expected)
            {
                continue; // being overwritten, or already reused by a newer decision
            }
            var record = slot.Record;
            if (Volatile.Read(ref slot.Sequence) == expected)
            {
                result.Add(record);
            }
        }
        return result;
    }
}

internal readonly record struct DecisionRecord(DateTimeOffset Time, string Caller, string Method, string Path, Decision Decision);
