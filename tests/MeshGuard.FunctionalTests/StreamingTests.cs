using System.Globalization;
using System.Net;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;
using Xunit.Abstractions;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Bodies stream through the pair, never buffered whole: a 1 GiB upload and a 1 GiB download complete while both
/// sidecars' resident memory stays flat, and a caller that stops reading holds the app back (backpressure)
/// instead of filling the sidecars' memory.
/// </summary>
public sealed class StreamingTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const long OneGiB = 1L << 30;

    /// <summary>
    /// Far below what buffering a 1 GiB body would take, far above a sidecar's working set (JIT ~150 MB); the
    /// measured peaks are printed for the record.
    /// </summary>
    private const long MaxSidecarRssBytes = 400L << 20;

    private readonly TempDirectory _temp = new();
    private LocalMesh _mesh = null!;
    private BulkApp _bulk = null!;
    private RecordingApp _frontendApp = null!;
    private MeshService _orders = null!;
    private MeshService _frontend = null!;

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        _mesh = new LocalMesh(_temp.Path);
        await _mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
        _bulk = await BulkApp.StartAsync();
        _frontendApp = await RecordingApp.StartAsync("frontend");
        _orders = await _mesh.StartSidecarAsync("orders", _bulk.Port);
        _frontend = await _mesh.StartSidecarAsync("frontend", _frontendApp.Port);
        await SidecarAdmin.WaitForServicesAsync(_frontend, 2);
    }

    public async Task DisposeAsync()
    {
        await _mesh.DisposeAsync();
        await _bulk.DisposeAsync();
        await _frontendApp.DisposeAsync();
        _temp.Dispose();
    }

    private HttpClient Client() => new(new SocketsHttpHandler { Proxy = new WebProxy($"http://127.0.0.1:{_frontend.OutboundPort}"), UseProxy = true })
    {
        Timeout = TimeSpan.FromMinutes(3),
    };

    [Fact]
    public async Task AOneGiBUploadAndAOneGiBDownloadPassWhileBothSidecarsStayFlat()
    {
        using var rss = new RssSampler([_orders.Sidecar!.Id, _frontend.Sidecar!.Id]);
        using var client = Client();

        var started = System.Diagnostics.Stopwatch.StartNew();
        using (var upload = await client.PostAsync(new Uri("http://orders/sink"), new GeneratedContent(OneGiB)))
        {
            Assert.Equal(HttpStatusCode.OK, upload.StatusCode);
            Assert.Equal(OneGiB.ToString(CultureInfo.InvariantCulture), await upload.Content.ReadAsStringAsync());
        }
        var uploadSeconds = started.Elapsed.TotalSeconds;

        started.Restart();
        long downloaded = 0;
        using (var download = await client.GetAsync(new Uri($"http://orders/source?bytes={OneGiB}"), HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, download.StatusCode);
            await using var body = await download.Content.ReadAsStreamAsync();
            var buffer = new byte[64 * 1024];
            int read;
            while ((read = await body.ReadAsync(buffer)) > 0)
            {
                downloaded += read;
            }
        }
        Assert.Equal(OneGiB, downloaded);
        var downloadSeconds = started.Elapsed.TotalSeconds;

        var peaks = rss.Stop();
        output.WriteLine($"1 GiB up {1024 / uploadSeconds:F0} MiB/s, down {1024 / downloadSeconds:F0} MiB/s; peak RSS orders' sidecar {peaks[0] >> 20} MiB, frontend's {peaks[1] >> 20} MiB");
        Assert.All(peaks, peak => Assert.InRange(peak, 1, MaxSidecarRssBytes));
    }

    [Fact]
    public async Task ACallerThatStopsReadingHoldsTheAppBackInsteadOfFillingTheSidecars()
    {
        using var client = Client();
        using var response = await client.GetAsync(new Uri($"http://orders/source?bytes={OneGiB}"), HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[1 << 20];
        await body.ReadExactlyAsync(buffer);

        // Stop reading. Whatever the windows and socket buffers on the way hold, the app soon cannot write more.
        using var rss = new RssSampler([_orders.Sidecar!.Id, _frontend.Sidecar!.Id]);
        await Task.Delay(TimeSpan.FromSeconds(2));
        var stalledAt = _bulk.Written;
        await Task.Delay(TimeSpan.FromSeconds(2));
        var later = _bulk.Written;
        var peaks = rss.Stop();
        output.WriteLine($"app wrote {stalledAt >> 20} MiB before stalling, {(later - stalledAt) >> 10} KiB more in the next 2 s; peak RSS {peaks[0] >> 20} / {peaks[1] >> 20} MiB");
        Assert.InRange(stalledAt, 1L << 20, 128L << 20);
        Assert.InRange(later - stalledAt, 0, 1L << 20);
        Assert.All(peaks, peak => Assert.InRange(peak, 1, MaxSidecarRssBytes));
    }

    /// <summary>A request body of a given length made on the fly, so the test process holds none of it either.</summary>
    private sealed class GeneratedContent(long length) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            var piece = new byte[64 * 1024];
            Array.Fill(piece, (byte)'u');
            for (long sent = 0; sent < length; sent += piece.Length)
            {
                await stream.WriteAsync(piece.AsMemory(0, (int)Math.Min(piece.Length, length - sent)));
            }
        }

        protected override bool TryComputeLength(out long size)
        {
            size = length;
            return true;
        }
    }

    /// <summary>Peak resident set size of processes, sampled from /proc every 50 ms.</summary>
    private sealed class RssSampler : IDisposable
    {
        private readonly int[] _pids;
        private readonly long[] _peaks;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;

        public RssSampler(int[] pids)
        {
            _pids = pids;
            _peaks = new long[pids.Length];
            _loop = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    Sample();
                    try
                    {
                        await Task.Delay(50, _stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }
            });
        }

        private void Sample()
        {
            for (var i = 0; i < _pids.Length; i++)
            {
                foreach (var line in File.ReadLines($"/proc/{_pids[i]}/status"))
                {
                    if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    {
                        var kb = long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
                        _peaks[i] = Math.Max(_peaks[i], kb * 1024);
                    }
                }
            }
        }

        public long[] Stop()
        {
            _stop.Cancel();
            _loop.Wait();
            Sample();
            return _peaks;
        }

        public void Dispose()
        {
            if (!_stop.IsCancellationRequested)
            {
                Stop();
            }
            _stop.Dispose();
        }
    }
}
