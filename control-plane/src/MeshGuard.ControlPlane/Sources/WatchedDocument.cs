using MeshGuard.ControlPlane.Distribution;

using MeshGuard.ControlPlane.State;

namespace MeshGuard.ControlPlane.Sources;

/// <summary>
/// One text document in force, parsed: a file of the data directory looked at every 200 ms (its size and time of
/// change), or the text a cluster or etcd offers. One way in for every new text: it is in force if it parses,
/// else it is refused whole and the last good one stays. At start there is no earlier one to keep, so a file that
/// does not parse stops the control plane. Serves the revocation list and the service bindings.
/// </summary>
internal sealed class WatchedDocument<T>(string path, T empty, WatchedDocument<T>.Parser parse, TimeProvider time)
    where T : class
{
    public delegate T Parser(string text, string source, out string? error);

    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);
    private readonly ChangeSignal _changed = new();
    private readonly T _empty = empty;
    private T _current = empty;
    private (DateTime Written, long Length) _stamp;

    public T Current => Volatile.Read(ref _current);

    public Task Changed => _changed.Next;

    /// <summary>Reads the file once, before anything is served; a missing file is the empty document.</summary>
    public T LoadFile()
    {
        _stamp = Stamp(path);
        var loaded = ReadFile(out var error);
        if (error is not null)
        {
            throw new InvalidOperationException(error);
        }
        Volatile.Write(ref _current, loaded);
        return loaded;
    }

    /// <summary>A new text: in force if it parses (null back), refused otherwise (the reason back).</summary>
    public string? Offer(string text, string source) => Apply(parse(text, source, out var error), error);

    /// <summary>Looks at the file until <paramref name="cancellation"/>; each change is applied or refused, and <paramref name="report"/> told which.</summary>
    public async Task WatchFileAsync(Action<T, string?> report, CancellationToken cancellation)
    {
        while (!cancellation.IsCancellationRequested)
        {
            await Task.Delay(Interval, time, cancellation);
            var stamp = Stamp(path);
            if (stamp == _stamp)
            {
                continue;
            }
            _stamp = stamp;
            var error = Apply(ReadFile(out var parseError), parseError);
            report(Current, error);
        }
    }

    private T ReadFile(out string? error)
    {
        error = null;
        return File.Exists(path) ? parse(File.ReadAllText(path), path, out error) : _empty;
    }

    private string? Apply(T value, string? error)
    {
        if (error is not null)
        {
            return error;
        }
        Volatile.Write(ref _current, value);
        _changed.Fire();
        return null;
    }

    private static (DateTime, long) Stamp(string path)
    {
        var file = new FileInfo(path);
        return file.Exists ? (file.LastWriteTimeUtc, file.Length) : (DateTime.MinValue, -1);
    }
}
