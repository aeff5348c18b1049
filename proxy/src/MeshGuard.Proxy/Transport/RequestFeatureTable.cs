using Microsoft.AspNetCore.Http.Features;

namespace MeshGuard.Proxy.Transport;

/// <summary>
/// The feature table of a request on one of the sidecar's own servers, where one object (the HTTP/2 stream, the
/// HTTP/1.1 connection) is both the request's state and the features it serves, so a request costs no feature
/// objects. A lookup finds, in order: a feature set during the request (the authorized request's proof, forwarder
/// errors, the hosting layer's), the object itself for a feature it serves, else the connection's table (the peer's
/// identity, its TLS, a redirected connection's destination). What was set is dropped when the object serves its next
/// request.
/// </summary>
internal sealed class RequestFeatureTable(object owner, Type[] served, Func<Type, bool> serves, IFeatureCollection connection)
{
    private Dictionary<Type, object>? _set;

    public int Revision { get; private set; }

    public object? this[Type key]
    {
        get
        {
            if (_set is { Count: > 0 } set && set.TryGetValue(key, out var feature))
            {
                return feature;
            }
            return serves(key) ? owner : connection[key];
        }
        set
        {
            Revision++;
            if (value is null)
            {
                _set?.Remove(key);
                return;
            }
            (_set ??= [])[key] = value;
        }
    }

    /// <summary>Before the object serves its next request.</summary>
    public void Reset()
    {
        _set?.Clear();
        Revision++;
    }

    public IEnumerator<KeyValuePair<Type, object>> GetEnumerator()
    {
        foreach (var type in served)
        {
            if (serves(type) && _set?.ContainsKey(type) != true)
            {
                yield return new(type, owner);
            }
        }
        if (_set is not null)
        {
            foreach (var pair in _set)
            {
                yield return pair;
            }
        }
        foreach (var pair in connection)
        {
            yield return pair;
        }
    }
}
