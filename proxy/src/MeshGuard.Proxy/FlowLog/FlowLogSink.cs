using System.Threading.Channels;
using MeshGuard.FlowLog;

namespace MeshGuard.Proxy.FlowLog;

/// <summary>
/// Where request handlers drop flow records: a bounded queue that never blocks a request. When it is full
/// the record is counted as lost; the writer then states the loss in a gap record.
/// </summary>
internal sealed class FlowLogSink
{
    private readonly Channel<FlowRecord>? _queue;
    private long _dropped;

    public FlowLogSink(FlowLogSettings settings)
    {
        Settings = settings;
        Telemetry.OpenTelemetrySetup.Meter.CreateObservableCounter("meshguard.flowlog.records_lost", () => Dropped,
            description: "Flow records lost to a full queue; each loss is also stated by a gap record.");
        if (settings.Directory is not null)
        {
            _queue = Channel.CreateBounded<FlowRecord>(new BoundedChannelOptions(settings.QueueCapacity)
            {
                SingleReader = true,
                SingleWriter = false,
                // Wait makes TryWrite answer false when full, so the loss is seen and counted.
                FullMode = BoundedChannelFullMode.Wait,
            });
        }
    }

    public FlowLogSettings Settings { get; }

    public bool Enabled => _queue is not null;

    /// <summary>Records lost to a full queue since start.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    private long _written;

    /// <summary>Records the writer has put in the log.</summary>
    public long Written => Interlocked.Read(ref _written);

    internal void CountWritten() => Interlocked.Increment(ref _written);

    internal ChannelReader<FlowRecord>? Reader => _queue?.Reader;

    public void Add(in FlowRecord record)
    {
        if (_queue is not null && !_queue.Writer.TryWrite(record))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    internal void Complete() => _queue?.Writer.TryComplete();
}

/// <summary>Flow log settings: directory (null: off), queue size, rotation, whether paths keep their query.</summary>
internal sealed record FlowLogSettings(string? Directory, int QueueCapacity, long MaxFileBytes, int RetainFiles, bool KeepQuery)
{
    public const int CheckpointEvery = 1000;

    public static readonly TimeSpan CheckpointInterval = TimeSpan.FromSeconds(5);
}
