using System.Runtime.InteropServices;
using System.Text;

namespace MeshGuard.FlowStore;

/// <summary>
/// A segment's inbound calls per minute and edge (caller, callee, decision, policy, rule), counted as its rows are
/// written (<see cref="FlowLineRow"/>), for the edge tables. The database then adds a few counts per segment instead
/// of reading the segment's rows back to group them. Consecutive records of one edge, most of a segment, cost a
/// comparison of bytes; strings are made only where the edge changes.
/// </summary>
internal sealed class EdgeCounts
{
    private const long MinuteMicros = 60_000_000;
    private const int KeyBytes = 512;

    private readonly Dictionary<Edge, long> _calls = [];
    private readonly byte[] _lastKey = new byte[KeyBytes];
    private int _lastLength = -1;
    private Edge _lastEdge;

    /// <param name="Minute">The minute's start, in microseconds since PostgreSQL's epoch (2000-01-01 UTC).</param>
    public readonly record struct Edge(long Minute, string Source, string Dest, string Decision, string Policy, string Rule);

    public IReadOnlyDictionary<Edge, long> Calls => _calls;

    /// <summary>One call at <paramref name="timeMicros"/> (PostgreSQL's epoch), with its columns' values.</summary>
    public void Add(long timeMicros, ReadOnlySpan<byte> source, ReadOnlySpan<byte> dest, ReadOnlySpan<byte> decision, ReadOnlySpan<byte> policy, ReadOnlySpan<byte> rule)
    {
        var minute = timeMicros - (((timeMicros % MinuteMicros) + MinuteMicros) % MinuteMicros);
        // The edge as bytes: its minute, then its fields, each closed by 0xFF (a byte UTF-8 never holds).
        var length = sizeof(long) + source.Length + dest.Length + decision.Length + policy.Length + rule.Length + 5;
        if (length <= KeyBytes)
        {
            Span<byte> key = stackalloc byte[KeyBytes];
            key = key[..length];
            MemoryMarshal.Write(key, in minute);
            var at = sizeof(long);
            Append(key, ref at, source);
            Append(key, ref at, dest);
            Append(key, ref at, decision);
            Append(key, ref at, policy);
            Append(key, ref at, rule);
            if (length == _lastLength && key.SequenceEqual(_lastKey.AsSpan(0, length)))
            {
                CollectionsMarshal.GetValueRefOrNullRef(_calls, _lastEdge)++;
                return;
            }
            key.CopyTo(_lastKey);
            _lastLength = length;
        }
        else
        {
            _lastLength = -1; // too long to remember: counted through the table alone
        }
        _lastEdge = new Edge(minute, Encoding.UTF8.GetString(source), Encoding.UTF8.GetString(dest), Encoding.UTF8.GetString(decision),
            Encoding.UTF8.GetString(policy), Encoding.UTF8.GetString(rule));
        CollectionsMarshal.GetValueRefOrAddDefault(_calls, _lastEdge, out _)++;
    }

    private static void Append(Span<byte> key, ref int at, ReadOnlySpan<byte> field)
    {
        field.CopyTo(key[at..]);
        at += field.Length;
        key[at++] = 0xFF;
    }
}
