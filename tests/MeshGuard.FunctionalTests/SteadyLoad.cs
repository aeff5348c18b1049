using System.Collections.Concurrent;
using System.Net;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Requests sent by a few workers while a test breaks something, counting every one that did not end in the
/// expected status: the "failed requests under steady load" a fault test asserts on. Each worker pauses a
/// moment between requests: steady, not saturating, so that tests running beside it keep their timing.
/// </summary>
internal sealed class SteadyLoad : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _workers;
    private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(2);
    private readonly ConcurrentQueue<string> _failures = new();
    private int _sent;

    private SteadyLoad(HttpClient client, Func<int, HttpRequestMessage> request, int workers, HttpStatusCode expected)
    {
        _workers = new Task[workers];
        for (var i = 0; i < workers; i++)
        {
            _workers[i] = Task.Run(() => RunAsync(client, request, expected));
        }
    }

    /// <summary>Requests sent so far (answered or failed).</summary>
    public int Sent => Volatile.Read(ref _sent);

    public IReadOnlyCollection<string> Failures => _failures;

    public static SteadyLoad Start(HttpClient client, Func<int, HttpRequestMessage> request, int workers = 4, HttpStatusCode expected = HttpStatusCode.OK) =>
        new(client, request, workers, expected);

    /// <summary>Waits until <paramref name="more"/> further requests were sent (the load is running, not stalled).</summary>
    public async Task RunForAsync(int more)
    {
        var target = Sent + more;
        Assert.True(await Eventually.TrueAsync(() => Sent >= target, TimeSpan.FromSeconds(60)), $"the load stalled at {Sent} requests");
    }

    private async Task RunAsync(HttpClient client, Func<int, HttpRequestMessage> request, HttpStatusCode expected)
    {
        while (!_stop.IsCancellationRequested)
        {
            var n = Interlocked.Increment(ref _sent);
            try
            {
                using var message = request(n);
                using var response = await client.SendAsync(message, _stop.Token);
                var body = await response.Content.ReadAsStringAsync(_stop.Token);
                if (response.StatusCode != expected)
                {
                    _failures.Enqueue($"request {n}: {(int)response.StatusCode} {body.Trim()}");
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                Interlocked.Decrement(ref _sent);
                return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
            {
                _failures.Enqueue($"request {n}: {e.GetType().Name} {e.Message}");
            }
            try
            {
                await Task.Delay(Pause, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Stops the workers; a request cut by the stop itself is not counted.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stop.Dispose();
    }
}
