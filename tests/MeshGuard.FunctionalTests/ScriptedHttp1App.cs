using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// An HTTP/1.1 app written at the byte level, to answer what a well-behaved server never would: for each
/// request path, the exact bytes of its answer, and whether it then closes the connection. Records each
/// request's head and which connection carried it.
/// </summary>
public sealed class ScriptedHttp1App : IAsyncDisposable
{
    /// <summary>
    /// The bytes of an answer; <paramref name="CloseAfter"/>: the connection is closed after it (with no word in the
    /// answer); <paramref name="BeforeBody"/>: sent as soon as the head arrived, the body left unread, then the
    /// connection half-closed and drained, as nginx's lingering close does; <paramref name="Hold"/>: never answered, the
    /// connection held until the sidecar closes it (then the path goes to <see cref="Abandoned"/>) or 30 s pass.
    /// </summary>
    public sealed record Answer(string Bytes, bool CloseAfter = false, bool BeforeBody = false, bool Hold = false);

    public sealed record Seen(string Head, int Connection);

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Func<string, Answer> _script;
    private readonly Task _accepting;
    private int _connections;

    private ScriptedHttp1App(Func<string, Answer> script)
    {
        _script = script;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public ConcurrentQueue<Seen> Requests { get; } = new();

    /// <summary>Paths of held requests whose connection the sidecar closed while the app had not answered.</summary>
    public ConcurrentQueue<string> Abandoned { get; } = new();

    /// <summary>Connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    public static ScriptedHttp1App Start(Func<string, Answer> script) => new(script);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = ServeAsync(socket, Interlocked.Increment(ref _connections));
        }
    }

    private async Task ServeAsync(Socket socket, int number)
    {
        using var _ = socket;
        var buffer = new List<byte>();
        var chunk = new byte[8192];
        try
        {
            while (true)
            {
                int end;
                while ((end = IndexOfEndOfHead(buffer)) < 0)
                {
                    var read = await socket.ReceiveAsync(chunk, _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }
                    buffer.AddRange(chunk.AsSpan(0, read));
                }
                var head = Encoding.Latin1.GetString(buffer.GetRange(0, end).ToArray());
                buffer.RemoveRange(0, end + 4);
                // Bodies: only Content-Length ones are read (and dropped); the tests send no others.
                var path = head.Split(' ', 3)[1];
                var answer = _script(path);
                if (answer.BeforeBody)
                {
                    Requests.Enqueue(new Seen(head, number));
                    await socket.SendAsync(Encoding.Latin1.GetBytes(answer.Bytes), _stop.Token);
                    socket.Shutdown(SocketShutdown.Send);
                    using var linger = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                    linger.CancelAfter(TimeSpan.FromSeconds(5));
                    while (await socket.ReceiveAsync(chunk, linger.Token) > 0)
                    {
                    }
                    return;
                }
                var length = head.Split("\r\n").Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                    .Select(p => int.Parse(p[1].Trim(), System.Globalization.CultureInfo.InvariantCulture)).FirstOrDefault();
                while (buffer.Count < length)
                {
                    var read = await socket.ReceiveAsync(chunk, _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }
                    buffer.AddRange(chunk.AsSpan(0, read));
                }
                buffer.RemoveRange(0, length);
                Requests.Enqueue(new Seen(head, number));
                if (answer.Hold)
                {
                    using var hold = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                    hold.CancelAfter(TimeSpan.FromSeconds(30));
                    try
                    {
                        while (await socket.ReceiveAsync(chunk, hold.Token) > 0)
                        {
                        }
                    }
                    catch (SocketException)
                    {
                        // Reset rather than closed: abandoned all the same.
                    }
                    Abandoned.Enqueue(path);
                    return;
                }
                await socket.SendAsync(Encoding.Latin1.GetBytes(answer.Bytes), _stop.Token);
                if (answer.CloseAfter)
                {
                    socket.Shutdown(SocketShutdown.Both);
                    return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private static int IndexOfEndOfHead(List<byte> buffer)
    {
        for (var i = 0; i + 3 < buffer.Count; i++)
        {
            if (buffer[i] == '\r' && buffer[i + 1] == '\n' && buffer[i + 2] == '\r' && buffer[i + 3] == '\n')
            {
                return i;
            }
        }
        return -1;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accepting;
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }
}
