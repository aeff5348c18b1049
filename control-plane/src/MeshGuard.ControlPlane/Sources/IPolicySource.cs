namespace MeshGuard.ControlPlane.Sources;

/// <summary>
/// Where the policy store's documents come from: the policy files of the data directory, or the AccessPolicy
/// objects of a cluster. Each document has a name that errors cite and is taken or refused whole by the store.
/// </summary>
internal interface IPolicySource
{
    /// <summary>What this is, for logs: "files DATA/policies", "kubernetes https://10.96.0.1:443".</summary>
    string Description { get; }

    /// <summary>The documents as they are now, by name.</summary>
    IReadOnlyDictionary<string, string> Read();

    /// <summary>Completes when the first complete read is available (at once for files).</summary>
    Task SyncedAsync(CancellationToken cancellation);

    /// <summary>Runs until cancelled, calling <paramref name="changed"/> whenever <see cref="Read"/> may give something new.</summary>
    Task WatchAsync(Action changed, CancellationToken cancellation);
}
