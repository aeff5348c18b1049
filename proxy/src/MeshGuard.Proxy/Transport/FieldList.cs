using System.Collections;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace MeshGuard.Proxy.Transport;

/// <summary>
/// A message's header fields for the sidecar's own servers, kept in arrival order in two parallel arrays and found by
/// a scan: a request carries a handful of fields, and a scan that compares lengths first costs less than a
/// case-insensitive hash of every name looked up (which is what a dictionary keyed with OrdinalIgnoreCase does). It
/// answers as ASP.NET Core's HeaderDictionary does: names compared ignoring case, the first spelling kept, an empty
/// value set removes the field, ContentLength read and written through the Content-Length field. The arrays are kept
/// between requests of a connection or stream.
/// A peer may send far more fields than that (an HTTP/2 block holds up to some 2,000): past <see cref="ScanLimit"/>
/// slots the names are also hashed, and a removed field leaves an empty slot that later compaction takes out, so no
/// number of fields makes a look-up or a removal cost more than a dictionary's.
/// </summary>
internal sealed class FieldList : IHeaderDictionary
{
    /// <summary>Slots a scan covers; beyond, a look-up goes through the hashed index.</summary>
    internal const int ScanLimit = 16;

    // A removed field's slot holds a null name until the slots are compacted.
    private string?[] _names;
    private StringValues[] _values;
    private int _end;
    private int _count;
    private int _version;
    private Dictionary<string, int>? _index;
    // Content-Length as last parsed, and the version of the fields it was parsed from: read on every body write.
    private long? _contentLength;
    private int _contentLengthVersion = -1;

    public FieldList(int capacity = 8)
    {
        _names = new string?[capacity];
        _values = new StringValues[capacity];
    }

    public int Count => _count;

    /// <summary>Slots the arrays hold now.</summary>
    internal int Capacity => _names.Length;

    public bool IsReadOnly => false;

    public StringValues this[string key]
    {
        get => IndexOf(key) is var i and >= 0 ? _values[i] : StringValues.Empty;
        set
        {
            ArgumentNullException.ThrowIfNull(key);
            Put(IndexOf(key), key, value, remove: value.Count == 0);
        }
    }

    StringValues IDictionary<string, StringValues>.this[string key]
    {
        get => IndexOf(key) is var i and >= 0 ? _values[i] : throw new KeyNotFoundException($"no field {key}");
        set => this[key] = value;
    }

    public long? ContentLength
    {
        get
        {
            if (_contentLengthVersion != _version)
            {
                var value = this[HeaderNames.ContentLength];
                _contentLength = value.Count == 1 && !string.IsNullOrEmpty(value[0])
                    && HeaderUtilities.TryParseNonNegativeInt64(new StringSegment(value[0]).Trim(), out var length) ? length : null;
                _contentLengthVersion = _version;
            }
            return _contentLength;
        }
        set
        {
            if (value is { } length)
            {
                this[HeaderNames.ContentLength] = HeaderUtilities.FormatNonNegativeInt64(length);
            }
            else
            {
                Remove(HeaderNames.ContentLength);
            }
        }
    }

    /// <summary>
    /// Adds a value to a field, or the field with it: a parser's one call per field line, one scan. As ASP.NET Core's
    /// Append extension does, a field whose values come to one empty string is left out.
    /// </summary>
    public void Append(string name, StringValues value)
    {
        if (value.Count == 0)
        {
            return;
        }
        var i = IndexOf(name);
        var joined = i >= 0 ? StringValues.Concat(_values[i], value) : value;
        Put(i, name, joined, remove: StringValues.IsNullOrEmpty(joined));
    }

    public void Add(string key, StringValues value)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (IndexOf(key) >= 0)
        {
            throw new ArgumentException($"the field {key} is already present", nameof(key));
        }
        AddNew(key, value);
    }

    public void Add(KeyValuePair<string, StringValues> item) => Add(item.Key, item.Value);

    public void Clear()
    {
        // References are dropped so that a kept list holds no request's strings, and arrays a large message grew are
        // given up, so that a connection's streams do not each keep what the largest block they served needed.
        if (_names.Length > 4 * ScanLimit)
        {
            _names = new string?[ScanLimit];
            _values = new StringValues[ScanLimit];
        }
        else
        {
            Array.Clear(_names, 0, _end);
            Array.Clear(_values, 0, _end);
        }
        _end = 0;
        _count = 0;
        _index = null;
        _version++;
    }

    public bool ContainsKey(string key) => IndexOf(key) >= 0;

    public bool Contains(KeyValuePair<string, StringValues> item) =>
        IndexOf(item.Key) is var i and >= 0 && StringValues.Equals(_values[i], item.Value);

    public bool TryGetValue(string key, out StringValues value)
    {
        var i = IndexOf(key);
        value = i >= 0 ? _values[i] : default;
        return i >= 0;
    }

    public bool Remove(string key)
    {
        var i = IndexOf(key);
        if (i < 0)
        {
            return false;
        }
        RemoveAt(i);
        return true;
    }

    public bool Remove(KeyValuePair<string, StringValues> item)
    {
        var i = IndexOf(item.Key);
        if (i < 0 || !StringValues.Equals(_values[i], item.Value))
        {
            return false;
        }
        RemoveAt(i);
        return true;
    }

    public void CopyTo(KeyValuePair<string, StringValues>[] array, int arrayIndex)
    {
        ArgumentNullException.ThrowIfNull(array);
        ArgumentOutOfRangeException.ThrowIfNegative(arrayIndex);
        if (array.Length - arrayIndex < _count)
        {
            throw new ArgumentException("the array is too small for the fields", nameof(array));
        }
        foreach (var field in this)
        {
            array[arrayIndex++] = field;
        }
    }

    public ICollection<string> Keys => this.Select(static pair => pair.Key).ToArray();

    public ICollection<StringValues> Values => this.Select(static pair => pair.Value).ToArray();

    /// <summary>A struct enumerator: a caller holding the list itself enumerates without an allocation.</summary>
    public Enumerator GetEnumerator() => new(this);

    IEnumerator<KeyValuePair<string, StringValues>> IEnumerable<KeyValuePair<string, StringValues>>.GetEnumerator() => GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    // Names the code looks up are mostly the very strings the parsers stored (HeaderNames and the HPACK table's), so
    // a first pass compares references; the second compares only names of the same length.
    private int IndexOf(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_index is not null)
        {
            return _index.TryGetValue(name, out var slot) ? slot : -1;
        }
        var names = _names;
        var end = _end;
        for (var i = 0; i < end; i++)
        {
            if (ReferenceEquals(names[i], name))
            {
                return i;
            }
        }
        for (var i = 0; i < end; i++)
        {
            if (names[i] is { } candidate && candidate.Length == name.Length && string.Equals(candidate, name, StringComparison.OrdinalIgnoreCase))
            {
                return i;
            }
        }
        return -1;
    }

    // A field's new values, the field found at i (or -1): removed, replaced where it stands, or added at the end.
    private void Put(int i, string name, StringValues value, bool remove)
    {
        if (remove)
        {
            if (i >= 0)
            {
                RemoveAt(i);
            }
        }
        else if (i >= 0)
        {
            _values[i] = value;
            _version++;
        }
        else
        {
            AddNew(name, value);
        }
    }

    private void AddNew(string name, StringValues value)
    {
        if (_end == _names.Length)
        {
            if (_count < _end / 2)
            {
                Compact();
            }
            else
            {
                var size = Math.Max(4, _end * 2); // from a list made with no slots too
                Array.Resize(ref _names, size);
                Array.Resize(ref _values, size);
            }
        }
        _names[_end] = name;
        _values[_end] = value;
        _index?.Add(name, _end);
        _end++;
        _count++;
        _version++;
        if (_index is null && _end > ScanLimit)
        {
            BuildIndex();
        }
    }

    private void RemoveAt(int slot)
    {
        _index?.Remove(_names[slot]!);
        _names[slot] = null;
        _values[slot] = default;
        _count--;
        _version++;
        while (_end > 0 && _names[_end - 1] is null)
        {
            _end--;
        }
    }

    // Live fields moved down over the empty slots, in order; the index follows their new places.
    private void Compact()
    {
        var to = 0;
        for (var from = 0; from < _end; from++)
        {
            if (_names[from] is { } name)
            {
                _names[to] = name;
                _values[to] = _values[from];
                to++;
            }
        }
        Array.Clear(_names, to, _end - to);
        Array.Clear(_values, to, _end - to);
        _end = to;
        if (_index is not null)
        {
            BuildIndex();
        }
    }

    private void BuildIndex()
    {
        var index = new Dictionary<string, int>(_count * 2, StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < _end; i++)
        {
            if (_names[i] is { } name)
            {
                index.Add(name, i);
            }
        }
        _index = index;
    }

    public struct Enumerator : IEnumerator<KeyValuePair<string, StringValues>>
    {
        private readonly FieldList _list;
        private readonly int _version;
        private int _index;

        internal Enumerator(FieldList list)
        {
            _list = list;
            _version = list._version;
            _index = -1;
        }

        public readonly KeyValuePair<string, StringValues> Current => new(_list._names[_index]!, _list._values[_index]);

        readonly object IEnumerator.Current => Current;

        public bool MoveNext()
        {
            if (_version != _list._version)
            {
                throw new InvalidOperationException("the fields changed while they were enumerated");
            }
            while (++_index < _list._end)
            {
                if (_list._names[_index] is not null)
                {
                    return true;
                }
            }
            return false;
        }

        public void Reset() => _index = -1;

        public readonly void Dispose()
        {
        }
    }
}
