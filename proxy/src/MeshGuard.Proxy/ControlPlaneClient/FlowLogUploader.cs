using Grpc.Core;
using MeshGuard.Contracts.V1;
using MeshGuard.FlowLog;
using MeshGuard.Proxy.FlowLog;

namespace MeshGuard.Proxy.ControlPlaneClient;

/// <summary>
/// Uploads the flow log to the control plane, off the writer's thread, in segments that end at a signed
/// record (<see cref="FlowLogTail"/>): the control plane keeps a copy it verified on arrival, and the
/// closing record of each segment is its witness record. Woken by each signed record the writer writes, at
/// most once a second (under load the writer signs dozens of checkpoints a second; one segment carries
/// them all). It asks the control plane where its copy ends when it starts and after a refusal; a segment
/// refused twice at the same place (the log no longer chains on to the copy) is sent as discontinuous. A
/// graceful stop sends what is left at once.
/// </summary>
internal sealed partial class FlowLogUploader(ControlPlaneChannel channel, FlowLogSink sink, TimeProvider time, ILogger<FlowLogUploader> logger) : BackgroundService, IFlowLogShipper
{
    /// <summary>
    /// A segment ends at the last signed record within 1 MiB (a checkpoint comes every 1,000 records, some
    /// 650 KB): the reader's one buffer stays that small. Only when no signed record ends within it (1,000 records
    /// of very long request lines) does it reach to the first one within 12 MiB, below the control plane's 16.
    /// </summary>
    internal const int SegmentBytes = 1024 * 1024;

    internal const int MaxSegmentBytes = 12 * 1024 * 1024;

    internal static readonly TimeSpan MinInterval = TimeSpan.FromSeconds(1);

    private readonly FlowLogTail? _tail = sink.Settings.Directory is { } directory ? new FlowLogTail(directory) : null;
    private readonly SemaphoreSlim _wake = new(0, 1);
    // Held while a segment is on its way, so a final flush waits for it instead of racing it.
    private readonly SemaphoreSlim _sending = new(1, 1);
    private bool _positioned;
    private long _refusedAt = -1;

    /// <summary>The writer wrote a signed record: there is a segment to send.</summary>
    public void SignedRecordWritten()
    {
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
        if (_tail is null)
        {
            return;
        }
        var backoff = new Backoff(TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(10));
        while (!stoppingToken.IsCancellationRequested)
        {
            await _wake.WaitAsync(stoppingToken);
            bool sent;
            await _sending.WaitAsync(stoppingToken);
            try
            {
                sent = await SendAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
            }
            finally
            {
                _sending.Release();
            }
            if (sent)
            {
                backoff.Reset();
                await Task.Delay(MinInterval, time, stoppingToken);
            }
            else
            {
                SignedRecordWritten(); // try again after the pause
                await backoff.DelayAsync(time, stoppingToken);
            }
        }
    }

    /// <summary>Sends every segment there is; false when the control plane could not be reached or refused one.</summary>
    private async Task<bool> SendAsync(TimeSpan timeout, CancellationToken cancellation)
    {
        var tail = _tail!;
        try
        {
            while (true)
            {
                if (!_positioned)
                {
                    var held = await channel.Witness.UploadAsync(new MeshGuard.Contracts.V1.FlowSegment(),
                        deadline: time.GetUtcNow().UtcDateTime.Add(timeout), cancellationToken: cancellation);
                    tail.Seek(held.Seq + 1);
                    _positioned = true;
                }
                if (tail.Read(SegmentBytes, MaxSegmentBytes) is not { } segment)
                {
                    return true;
                }
                try
                {
                    // In parts (FlowSegmentUpload says why); the reader's buffer is not touched again until this returns.
                    await channel.Witness.UploadInPartsAsync(segment.Lines, segment.Discontinuous, time.GetUtcNow().UtcDateTime.Add(timeout), cancellation);
                    tail.Advance(segment);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition)
                {
                    LogRefused(logger, segment.FirstSeq, e.Status.Detail);
                    if (_refusedAt == segment.FirstSeq && !segment.Discontinuous)
                    {
                        tail.Seek(segment.FirstSeq, discontinuous: true);
                    }
                    else
                    {
                        // Perhaps another replica, holding another copy: ask where it ends.
                        _refusedAt = segment.FirstSeq;
                        _positioned = false;
                    }
                    return false;
                }
            }
        }
        catch (Exception e) when (e is RpcException or HttpRequestException or IOException)
        {
            LogFailed(logger, e.Message);
            _positioned = false;
            return false;
        }
    }

    /// <summary>What is left, sent on a graceful stop after the writer's final checkpoint.</summary>
    public async Task FlushAsync(CancellationToken cancellation)
    {
        if (_tail is null)
        {
            return;
        }
        await _sending.WaitAsync(cancellation);
        try
        {
            await SendAsync(TimeSpan.FromSeconds(3), cancellation);
        }
        catch (OperationCanceledException e)
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

    [LoggerMessage(EventId = 410, Level = LogLevel.Warning, Message = "could not upload the flow log to the control plane ({Reason}); will retry")]
    private static partial void LogFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 411, Level = LogLevel.Warning, Message = "the control plane refused the flow-log segment from seq {Seq}: {Reason}")]
    private static partial void LogRefused(ILogger logger, long seq, string reason);
}
