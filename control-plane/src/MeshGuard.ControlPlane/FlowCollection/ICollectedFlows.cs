namespace MeshGuard.ControlPlane.FlowCollection;

/// <summary>
/// The collected flow records and the state of each workload's log, as the console reads them: from this replica's
/// data directory (<see cref="CollectedFlows"/>) or from the flow store every replica shares (<see cref="StoredCollectedFlows"/>).
/// </summary>
internal interface ICollectedFlows
{
    /// <summary>Every collected log's workload and its verification.</summary>
    Task<IReadOnlyList<LogVerification>> LogsAsync(CancellationToken cancellation);

    /// <summary>Flow records at or after <paramref name="since"/>, newest first, at most <see cref="CollectedFlows.MaxRecords"/>.</summary>
    Task<List<CollectedFlow>> ReadAsync(DateTimeOffset since, CancellationToken cancellation);
}
