using MeshGuard.FlowLog;

namespace MeshGuard.Proxy.FlowLog;

/// <summary>
/// The background writer: drains the queue into the hash-chained log, writes a gap record for every loss,
/// a signed checkpoint every 1,000 records or 5 seconds, and a final checkpoint on a graceful stop. When a
/// write fails (a full disk) the sidecar goes on serving: the writer is dropped, records are counted as lost
/// (those of the failed batch, then the queue's overflow), and once a second it tries a new file; the first
/// record after it is back is the gap record that says how many were lost.
/// </summary>
internal sealed partial class FlowLogService(
    FlowLogSink sink, SvidCheckpointSigner signer, TimeProvider time, ILogger<FlowLogService> logger, IFlowLogShipper? uploader = null,
    IFlowRecordExport? export = null) : BackgroundService
{
    private FlowLogWriter? _writer;
    private long _gapsWritten;
    private long _unflushed;
    private DateTimeOffset _reopenAt;

    private static readonly TimeSpan ReopenEvery = TimeSpan.FromSeconds(1);

    /// <summary>Set by tests to hold the writer as a slow disk would.</summary>
    internal SemaphoreSlim? Gate { get; set; }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        if (sink.Settings.Directory is { } directory)
        {
            _writer = OpenWriter(directory);
            LogOpened(logger, directory, _writer.Seq);
        }
        return base.StartAsync(cancellationToken);
    }

    private FlowLogWriter OpenWriter(string directory)
    {
        var writer = new FlowLogWriter(directory, signer, time, sink.Settings.MaxFileBytes, sink.Settings.RetainFiles);
        if (uploader is not null)
        {
            writer.SignedRecordWritten = uploader.SignedRecordWritten;
        }
        try
        {
            writer.Open();
        }
        catch (IOException)
        {
            writer.Abandon();
            throw;
        }
        return writer;
    }

    /// <summary>After a failed write: a new file once a second, until one takes its first record.</summary>
    private bool TryReopen()
    {
        if (time.GetUtcNow() < _reopenAt)
        {
            return false;
        }
        try
        {
            _writer = OpenWriter(sink.Settings.Directory!);
            LogRecovered(logger, sink.Dropped - _gapsWritten);
            return true;
        }
        catch (IOException e)
        {
            _reopenAt = time.GetUtcNow() + ReopenEvery;
            LogStillFailing(logger, e.Message);
            return false;
        }
    }

    private void Fail(IOException error)
    {
        sink.CountLost(_unflushed);
        _unflushed = 0;
        _writer?.Abandon();
        _writer = null;
        _reopenAt = time.GetUtcNow() + ReopenEvery;
        LogWriteFailed(logger, error.Message);
    }

    /// <summary>How often the writer drains the queue: records are written in batches, one flush per batch.</summary>
    internal static readonly TimeSpan DrainInterval = TimeSpan.FromMilliseconds(20);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_writer is null || sink.Queue is not { } queue)
        {
            return;
        }
        // While the writer is down the queue fills and its overflow is counted; serving never waits on the disk.
        // A steady tick while records come rather than a wake-up per record: under load each tick writes a batch
        // with one flush. A tick that finds nothing parks the writer: no timer runs, and the first record queued
        // (or, while records wait to be signed, the checkpoint's 5-second clock) wakes it. Ticking through idle
        // cost each sidecar some 140 timer and 140 thread-pool wake-ups a second and 1.3 % of a core (the timer
        // thread woke for the tick and again to be re-armed).
        try
        {
            while (true)
            {
                using (var timer = new PeriodicTimer(DrainInterval, time))
                {
                    while (await timer.WaitForNextTickAsync(stoppingToken))
                    {
                        if (Gate is { } gate)
                        {
                            await gate.WaitAsync(stoppingToken);
                            gate.Release();
                        }
                        if (_writer is null && !TryReopen())
                        {
                            continue; // a writer that failed is retried each second: no parking
                        }
                        if (!TryDrain(queue))
                        {
                            break;
                        }
                    }
                }
                if (_writer is { } writer)
                {
                    // Records not yet signed are signed within 5 seconds; with none, only a record ends the wait.
                    var unsignedFor = writer.SinceCheckpoint > 0
                        ? writer.LastCheckpoint + FlowLogSettings.CheckpointInterval - time.GetUtcNow()
                        : Timeout.InfiniteTimeSpan;
                    await queue.WaitForRecordAsync(unsignedFor, time, stoppingToken);
                    // Woken by the clock, the checkpoint goes in now; woken by a record, so does the record, and the
                    // ticks take those after it.
                    TryDrain(queue);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>A drain whose failed write drops the writer (<see cref="Fail"/>); whether it wrote anything.</summary>
    private bool TryDrain(FlowRecordQueue queue)
    {
        if (_writer is null)
        {
            return false;
        }
        try
        {
            return Drain(queue);
        }
        catch (IOException e)
        {
            Fail(e);
            return true;
        }
    }

    /// <summary>Writes what is queued, the gap record for any loss and a checkpoint when one is due; whether it wrote anything.</summary>
    private bool Drain(FlowRecordQueue queue)
    {
        var writer = _writer!;
        var written = false;
        while (queue.TryDequeue(out var record))
        {
            written = true;
            _unflushed++;
            writer.Append(record);
            export?.Flow(record, writer.Seq, writer.LastHash);
            if (writer.SinceCheckpoint >= FlowLogSettings.CheckpointEvery)
            {
                writer.Checkpoint();
            }
        }
        // Records are lost only while the queue is full, that is after everything it held: the gap goes here.
        written |= WriteGapIfAny(writer);
        if (writer.SinceCheckpoint > 0 && time.GetUtcNow() - writer.LastCheckpoint >= FlowLogSettings.CheckpointInterval)
        {
            writer.Checkpoint();
            written = true;
        }
        if (written)
        {
            writer.Flush();
        }
        // Written means on disk (as far as a flush can tell): only now are the batch's records counted so.
        sink.CountWritten(_unflushed);
        _unflushed = 0;
        return written;
    }

    private bool WriteGapIfAny(FlowLogWriter writer)
    {
        var dropped = sink.Dropped;
        if (dropped <= _gapsWritten)
        {
            return false;
        }
        writer.AppendGap(dropped - _gapsWritten);
        export?.Gap(dropped - _gapsWritten, time.GetUtcNow(), writer.Seq, writer.LastHash);
        LogGap(logger, dropped - _gapsWritten);
        _gapsWritten = dropped;
        return true;
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        sink.Complete();
        await base.StopAsync(cancellationToken);
        if (_writer is not null)
        {
            // What is still queued goes in before the final signed checkpoint.
            try
            {
                if (sink.Queue is { } queue)
                {
                    Drain(queue);
                }
                _writer.Dispose();
                LogClosed(logger, _writer.Seq);
            }
            catch (IOException e)
            {
                Fail(e);
            }
            _writer = null;
            if (uploader is not null)
            {
                await uploader.FlushAsync(cancellationToken);
            }
        }
    }

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "flow log in {Directory}, continuing after seq {Seq}")]
    private static partial void LogOpened(ILogger logger, string directory, long seq);

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "flow log queue was full: {Count} records lost, gap record written")]
    private static partial void LogGap(ILogger logger, long count);

    [LoggerMessage(EventId = 403, Level = LogLevel.Error, Message = "flow log write failed ({Reason}); requests are still served, records are counted as lost until the log can be written again")]
    private static partial void LogWriteFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "flow log still cannot be written: {Reason}")]
    private static partial void LogStillFailing(ILogger logger, string reason);

    [LoggerMessage(EventId = 405, Level = LogLevel.Information, Message = "flow log writable again in a new file; a gap record states the {Count} records lost")]
    private static partial void LogRecovered(ILogger logger, long count);

    [LoggerMessage(EventId = 402, Level = LogLevel.Information, Message = "flow log closed with a final signed checkpoint at seq {Seq}")]
    private static partial void LogClosed(ILogger logger, long seq);
}
