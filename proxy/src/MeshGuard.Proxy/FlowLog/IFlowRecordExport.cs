using MeshGuard.FlowLog;

namespace MeshGuard.Proxy.FlowLog;

/// <summary>
/// Where each record goes as well once it is in the log, with its place in the chain (<c>Telemetry.OtlpFlowRecordExport</c>:
/// OpenTelemetry log records). Called on the writer's thread, after the line is written: a record is exported only
/// as the log has it. FlowLog names only this, so the log does not depend on the telemetry that reads it.
/// </summary>
internal interface IFlowRecordExport
{
    /// <param name="seq">The record's seq in the log.</param>
    /// <param name="hash">The SHA-256 of its line (hex): the next record's <c>prev</c>.</param>
    void Flow(in FlowRecord record, long seq, string hash);

    /// <summary>A gap record: <paramref name="missing"/> records were lost at this point.</summary>
    void Gap(long missing, DateTimeOffset time, long seq, string hash);
}
