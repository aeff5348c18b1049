using MeshGuard.FlowLog;

namespace MeshGuard.Proxy.FlowLog;

/// <summary>
/// Where request handlers drop flow records: a bounded queue that never blocks a request. When it is full
/// the record is counted as lost; the writer then states the loss in a gap record.
/// </summary>
internal sealed class FlowLogSink
{
    private readonly FlowRecordQueue? _queue;
    private long _dropped;
    private volatile bool _completed;

    public FlowLogSink(FlowLogSettings settings)
    {
        Settings = settings;
        if (settings.Directory is not null)
        {
            _queue = new FlowRecordQueue(settings.QueueCapacity);
        }
    }

    public FlowLogSettings Settings { get; }

    public bool Enabled => _queue is not null;

    /// <summary>Records lost since start: to a full queue, or to a failed write.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    private long _written;

    /// <summary>Records the writer has put in the log.</summary>
    public long Written => Interlocked.Read(ref _written);

    internal void CountWritten(long records) => Interlocked.Add(ref _written, records);

    /// <summary>Records the writer took but could not put on disk (a write failed): lost like an overflow.</summary>
    internal void CountLost(long records) => Interlocked.Add(ref _dropped, records);

    /// <summary>The writer's end of the queue; null when flow logs are off.</summary>
    internal FlowRecordQueue? Queue => _queue;

    public void Add(in FlowRecord record)
    {
        if (_queue is not null && (_completed || !_queue.TryEnqueue(record)))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    /// <summary>The writer is stopping: what comes after its last drain is counted as lost.</summary>
    internal void Complete() => _completed = true;
}

/// <summary>Flow log settings: directory (null: off), queue size, rotation, whether paths keep their query.</summary>
internal sealed record FlowLogSettings(string? Directory, int QueueCapacity, long MaxFileBytes, int RetainFiles, bool KeepQuery)
{
    public const int CheckpointEvery = 1000;

    public static readonly TimeSpan CheckpointInterval = TimeSpan.FromSeconds(5);
}
