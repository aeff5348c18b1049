using System.Collections.Concurrent;

namespace MeshGuard.Proxy.Inbound;

/// <summary>
/// One <typeparamref name="T"/> (a pool of connections to the app, or a client) per calling identity, up to
/// <see cref="MaxCallers"/>; callers beyond (more than a service is ever called by) share <see cref="Shared"/>.
/// An app ends a whole multiplexed connection for what one request on it did (Kestrel: a body trickled below its
/// minimum rate, counted across the connection; streams reset while it goes on with them), and every other request on
/// that connection fails with it: so the connections a caller's requests travel on are that caller's alone.
/// </summary>
internal sealed class PerCaller<T>(Func<T> create) where T : class
{
    public const int MaxCallers = 1024;

    private readonly ConcurrentDictionary<string, T> _perCaller = new(StringComparer.Ordinal);

    /// <summary>What callers share: those beyond the bound, and paths where requests do not share connections.</summary>
    public T Shared { get; } = create();

    /// <summary><paramref name="caller"/>'s own (its SPIFFE ID).</summary>
    public T For(string caller)
    {
        if (_perCaller.TryGetValue(caller, out var own))
        {
            return own;
        }
        return _perCaller.Count >= MaxCallers ? Shared : _perCaller.GetOrAdd(caller, static (_, create) => create(), create);
    }

    /// <summary>Every one made so far, the shared one first.</summary>
    public IEnumerable<T> All => _perCaller.Values.Prepend(Shared);
}
