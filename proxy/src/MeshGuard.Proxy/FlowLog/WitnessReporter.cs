using Google.Protobuf;
using MeshGuard.Contracts.V1;
using MeshGuard.Proxy.ControlPlaneClient;

namespace MeshGuard.Proxy.FlowLog;

/// <summary>
/// Sends each signed flow-log line to the control plane's witness, off the writer's thread. Only the
/// latest matters: a newer line replaces one not yet sent; one that failed is tried again with the next.
/// At most one a second: under load the writer signs dozens of checkpoints a second, and the witness keeps
/// only the newest, so sending each would cost the control plane a chain check and a file write apiece for
/// nothing. A graceful stop sends the final checkpoint at once.
/// </summary>
internal sealed partial class WitnessReporter(ControlPlaneChannel channel, TimeProvider time, ILogger<WitnessReporter> logger) : BackgroundService
{
    private byte[]? _pending;
    private readonly SemaphoreSlim _wake = new(0, 1);
    // Held while a line is on its way, so a final flush waits for it instead of racing it.
    private readonly SemaphoreSlim _sending = new(1, 1);

    internal static readonly TimeSpan MinInterval = TimeSpan.FromSeconds(1);

    public void Report(byte[] line)
    {
        Volatile.Write(ref _pending, line);
        if (_wake.CurrentCount == 0)
        {
            try
            {
                _wake.Release();
            }
            catch (SemaphoreFullException)
            {
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = new Backoff(TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(10));
        while (!stoppingToken.IsCancellationRequested)
        {
            await _wake.WaitAsync(stoppingToken);
            while (true)
            {
                await _sending.WaitAsync(stoppingToken);
                var failed = false;
                try
                {
                    if (Interlocked.Exchange(ref _pending, null) is not { } line)
                    {
                        break;
                    }
                    try
                    {
                        await channel.Witness.RecordAsync(new WitnessRecord { Line = ByteString.CopyFrom(line) },
                            deadline: time.GetUtcNow().UtcDateTime.AddSeconds(10), cancellationToken: CancellationToken.None);
                        backoff.Reset();
                    }
                    catch (Exception e) when (e is Grpc.Core.RpcException or HttpRequestException or IOException)
                    {
                        LogFailed(logger, e.Message);
                        // Keep it unless something newer arrived meanwhile.
                        Interlocked.CompareExchange(ref _pending, line, null);
                        failed = true;
                    }
                }
                finally
                {
                    _sending.Release();
                }
                if (failed)
                {
                    await backoff.DelayAsync(time, stoppingToken);
                }
                else
                {
                    await Task.Delay(MinInterval, time, stoppingToken);
                }
            }
        }
    }

    /// <summary>The last line, sent on a graceful stop even after the background loop ended.</summary>
    public async Task FlushAsync(CancellationToken cancellation)
    {
        await _sending.WaitAsync(cancellation);
        try
        {
            if (Interlocked.Exchange(ref _pending, null) is { } line)
            {
                await channel.Witness.RecordAsync(new WitnessRecord { Line = ByteString.CopyFrom(line) },
                    deadline: time.GetUtcNow().UtcDateTime.AddSeconds(3), cancellationToken: cancellation);
            }
        }
        catch (Exception e) when (e is Grpc.Core.RpcException or OperationCanceledException or HttpRequestException or IOException)
        {
            LogFailed(logger, e.Message);
        }
        finally
        {
            _sending.Release();
        }
    }

    public override void Dispose()
    {
        _wake.Dispose();
        _sending.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 410, Level = LogLevel.Warning, Message = "could not send a flow-log checkpoint to the witness ({Reason}); will retry")]
    private static partial void LogFailed(ILogger logger, string reason);
}
