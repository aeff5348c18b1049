using MeshGuard.FlowLog;

namespace MeshGuard.Proxy.FlowLog;

/// <summary>
/// The background writer: drains the queue into the hash-chained log, writes a gap record for every loss,
/// a signed checkpoint every 1,000 records or 5 seconds, and a final checkpoint on a graceful stop.
/// </summary>
internal sealed partial class FlowLogService(
    FlowLogSink sink, SvidCheckpointSigner signer, TimeProvider time, ILogger<FlowLogService> logger, WitnessReporter? witness = null) : BackgroundService
{
    private FlowLogWriter? _writer;
    private long _gapsWritten;

    /// <summary>Set by tests to hold the writer as a slow disk would.</summary>
    internal SemaphoreSlim? Gate { get; set; }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        if (sink.Settings.Directory is { } directory)
        {
            _writer = new FlowLogWriter(directory, signer, time, sink.Settings.MaxFileBytes, sink.Settings.RetainFiles);
            if (witness is not null)
            {
                _writer.SignedRecordWritten = witness.Report;
            }
            _writer.Open();
            LogOpened(logger, directory, _writer.Seq);
        }
        return base.StartAsync(cancellationToken);
    }

    /// <summary>How often the writer drains the queue: records are written in batches, one flush per batch.</summary>
    internal static readonly TimeSpan DrainInterval = TimeSpan.FromMilliseconds(20);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_writer is null || sink.Queue is not { } queue)
        {
            return;
        }
        // A steady tick rather than a wake-up per record: under load each tick writes a batch with one
        // flush; idle, it costs fifty wake-ups a second and gives checkpoints their 5-second clock.
        using var timer = new PeriodicTimer(DrainInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                if (Gate is { } gate)
                {
                    await gate.WaitAsync(stoppingToken);
                    gate.Release();
                }
                Drain(queue);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void Drain(FlowRecordQueue queue)
    {
        var writer = _writer!;
        var written = false;
        while (queue.TryDequeue(out var record))
        {
            written = true;
            writer.Append(record);
            sink.CountWritten();
            if (writer.SinceCheckpoint >= FlowLogSettings.CheckpointEvery)
            {
                writer.Checkpoint();
            }
        }
        // Records are lost only while the queue is full, that is after everything it held: the gap goes here.
        WriteGapIfAny(writer);
        if (time.GetUtcNow() - writer.LastCheckpoint >= FlowLogSettings.CheckpointInterval)
        {
            writer.Checkpoint();
        }
        if (written)
        {
            writer.Flush();
        }
    }

    private void WriteGapIfAny(FlowLogWriter writer)
    {
        var dropped = sink.Dropped;
        if (dropped > _gapsWritten)
        {
            writer.AppendGap(dropped - _gapsWritten);
            LogGap(logger, dropped - _gapsWritten);
            _gapsWritten = dropped;
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        sink.Complete();
        await base.StopAsync(cancellationToken);
        if (_writer is not null)
        {
            // What is still queued goes in before the final signed checkpoint.
            if (sink.Queue is { } queue)
            {
                Drain(queue);
            }
            _writer.Dispose();
            LogClosed(logger, _writer.Seq);
            _writer = null;
            if (witness is not null)
            {
                await witness.FlushAsync(cancellationToken);
            }
        }
    }

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "flow log in {Directory}, continuing after seq {Seq}")]
    private static partial void LogOpened(ILogger logger, string directory, long seq);

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "flow log queue was full: {Count} records lost, gap record written")]
    private static partial void LogGap(ILogger logger, long count);

    [LoggerMessage(EventId = 402, Level = LogLevel.Information, Message = "flow log closed with a final signed checkpoint at seq {Seq}")]
    private static partial void LogClosed(ILogger logger, long seq);
}
