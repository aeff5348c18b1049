namespace MeshGuard.Proxy.Transport.Http2;

/// <summary>
/// HPACK's dynamic table (RFC 7541 2.3.2, 4): newest entry first, each costing its name and value octets plus 32,
/// the oldest evicted to stay within the size. Fields are Latin-1, so a string's length is its octet count.
/// </summary>
internal sealed class HpackDynamicTable(int maxSize)
{
    private (string Name, string Value)[] _ring = new (string, string)[16];
    private int _newest = -1;

    public int Count { get; private set; }

    public int Size { get; private set; }

    public int MaxSize { get; private set; } = maxSize;

    /// <summary>A field's size as HPACK counts a table entry (RFC 7541 4.1), and HTTP/2 a field section (RFC 9113 6.5.2).</summary>
    public static int EntrySize(string name, string value) => name.Length + value.Length + 32;

    /// <summary>Entry <paramref name="index"/>, 0 the newest; null beyond the table.</summary>
    public (string Name, string Value)? Get(int index)
    {
        if ((uint)index >= (uint)Count)
        {
            return null;
        }
        return _ring[Slot(index)];
    }

    /// <summary>
    /// The newest entry equal to <paramref name="name"/> (case-insensitively) and <paramref name="value"/> (exactly),
    /// 0 the newest, or -1; <paramref name="nameIndex"/> is the newest entry with that name alone, or -1. The ring is
    /// walked in place, newest first: the encoder asks this for every field it writes.
    /// </summary>
    public int Find(string name, string value, out int nameIndex)
    {
        nameIndex = -1;
        var index = 0;
        for (var slot = _newest; slot >= 0 && index < Count; slot--, index++)
        {
            if (Matches(slot, name, value, index, ref nameIndex))
            {
                return index;
            }
        }
        for (var slot = _ring.Length - 1; index < Count; slot--, index++)
        {
            if (Matches(slot, name, value, index, ref nameIndex))
            {
                return index;
            }
        }
        return -1;
    }

    private bool Matches(int slot, string name, string value, int index, ref int nameIndex)
    {
        ref readonly var entry = ref _ring[slot];
        if (!string.Equals(entry.Name, name, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        if (string.Equals(entry.Value, value, StringComparison.Ordinal))
        {
            return true;
        }
        if (nameIndex < 0)
        {
            nameIndex = index;
        }
        return false;
    }

    /// <summary>Adds an entry, evicting old ones; an entry larger than the table empties it and is not kept (4.4).</summary>
    public void Add(string name, string value)
    {
        var size = EntrySize(name, value);
        if (size > MaxSize)
        {
            Clear();
            return;
        }
        while (Size + size > MaxSize)
        {
            EvictOldest();
        }
        if (Count == _ring.Length)
        {
            Grow();
        }
        _newest = (_newest + 1) % _ring.Length;
        _ring[_newest] = (name, value);
        Count++;
        Size += size;
    }

    public void Resize(int maxSize)
    {
        MaxSize = maxSize;
        while (Size > MaxSize)
        {
            EvictOldest();
        }
    }

    // index < Count <= the ring's length: one wrap at most, no division.
    private int Slot(int index) => _newest - index >= 0 ? _newest - index : _newest - index + _ring.Length;

    private void EvictOldest()
    {
        var slot = Slot(Count - 1);
        var (name, value) = _ring[slot];
        Size -= EntrySize(name, value);
        _ring[slot] = default;
        Count--;
    }

    private void Clear()
    {
        while (Count > 0)
        {
            EvictOldest();
        }
    }

    private void Grow()
    {
        var bigger = new (string, string)[_ring.Length * 2];
        for (var i = 0; i < Count; i++)
        {
            // Oldest first at the bottom, so the newest lands at Count - 1.
            bigger[Count - 1 - i] = _ring[Slot(i)];
        }
        _ring = bigger;
        _newest = Count - 1;
    }
}
