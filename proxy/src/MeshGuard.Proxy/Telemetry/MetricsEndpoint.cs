using System.Globalization;
using System.Text;
using MeshGuard.Hosting;
using MeshGuard.Proxy.Config;
using MeshGuard.Proxy.ControlPlaneClient;
using MeshGuard.Proxy.Identity;

namespace MeshGuard.Proxy.Telemetry;

/// <summary>Prometheus text on the metrics port (127.0.0.1:15020): decisions, config state, SVID expiry.</summary>
internal static class MetricsEndpoint
{
    public static void Map(IEndpointRouteBuilder app, int port)
    {
        app.MapGet("/healthz", () => Results.Text("ok\n")).OnListener(port, loopbackHost: true);
        app.MapGet("/metrics", (AuthorizationMetrics authorization, SnapshotApplier applier, SidecarConfigSource config, ICredentialSource credentials, MeshGuard.Proxy.FlowLog.FlowLogSink flows, MeshGuard.Proxy.Limits.ConnectionLimits limits, MeshGuard.Proxy.Limits.PrematureResetLimit resets, MeshGuard.Proxy.Outbound.Resilience.OutboundMetrics outbound,
            MeshGuard.Proxy.Outbound.Resilience.RetryBudget budget, MeshGuard.Proxy.Runtime.StateFileWriter stateFiles, TimeProvider time) =>
        {
            var text = new StringBuilder();
            authorization.WriteTo(text);
            var now = time.GetUtcNow();
            var applied = config.Current;
            Gauge(text, "meshguard_config_version", "Version of the config snapshot in force (0: none).", applied?.Version ?? 0);
            Gauge(text, "meshguard_config_stale", "1 while the control plane's stream is not connected (serving the last good snapshot).", applier.Connected ? 0 : 1);
            Gauge(text, "meshguard_config_age_seconds", "Seconds since the snapshot in force was issued.", applied is null ? 0 : (now - applied.IssuedAt).TotalSeconds);
            text.Append("# TYPE meshguard_config_snapshots_refused_total counter\n")
                .Append(CultureInfo.InvariantCulture, $"meshguard_config_snapshots_refused_total {applier.Refused}\n");
            Gauge(text, "meshguard_svid_expiry_seconds", "Seconds until the current SVID expires.", (credentials.Current.Svid.NotAfter - now).TotalSeconds);
            text.Append("# HELP meshguard_flowlog_records_lost_total Flow records lost to a full queue (each loss is also stated by a gap record).\n")
                .Append("# TYPE meshguard_flowlog_records_lost_total counter\n")
                .Append(CultureInfo.InvariantCulture, $"meshguard_flowlog_records_lost_total {flows.Dropped}\n")
                .Append("# TYPE meshguard_flowlog_records_written_total counter\n")
                .Append(CultureInfo.InvariantCulture, $"meshguard_flowlog_records_written_total {flows.Written}\n")
                // What the load tests divide by the requests they sent: bytes allocated per proxied request.
                .Append("# HELP dotnet_gc_allocated_bytes_total Bytes allocated on the managed heap since start.\n")
                .Append("# TYPE dotnet_gc_allocated_bytes_total counter\n")
                .Append(CultureInfo.InvariantCulture, $"dotnet_gc_allocated_bytes_total {GC.GetTotalAllocatedBytes(precise: false)}\n");
            text.Append("# HELP meshguard_connections_open Open connections on a data listener.\n# TYPE meshguard_connections_open gauge\n")
                .Append(CultureInfo.InvariantCulture, $"meshguard_connections_open{{listener=\"{limits.Inbound.Listener}\"}} {limits.Inbound.Open}\n")
                .Append(CultureInfo.InvariantCulture, $"meshguard_connections_open{{listener=\"{limits.Outbound.Listener}\"}} {limits.Outbound.Open}\n")
                .Append("# HELP meshguard_connections_refused_total Connections closed at accept because the listener held --max-connections.\n")
                .Append("# TYPE meshguard_connections_refused_total counter\n")
                .Append(CultureInfo.InvariantCulture, $"meshguard_connections_refused_total{{listener=\"{limits.Inbound.Listener}\"}} {limits.Inbound.Refused}\n")
                .Append(CultureInfo.InvariantCulture, $"meshguard_connections_refused_total{{listener=\"{limits.Outbound.Listener}\"}} {limits.Outbound.Refused}\n");
            Counter(text, "meshguard_inbound_premature_resets_total", "Inbound streams their peer cancelled before an answer, within their first second.", resets.PrematureResets);
            Counter(text, "meshguard_inbound_connections_cut_for_resets_total", "Inbound connections closed because their peer cancelled more streams before an answer than it let be answered, past the allowance.", resets.ConnectionsCut);
            Counter(text, "meshguard_state_file_write_failures_total", "Writes of the state directory (SVID, key, bundle, snapshot) that failed; each is logged with its file and reason.", stateFiles.Failed);
            Counter(text, "meshguard_outbound_retries_total", "Outbound tries after the first (another endpoint for a request that failed safely).", outbound.Retries);
            Counter(text, "meshguard_outbound_retry_budget_exhausted_total", "Retries refused because the retry budget was spent.", budget.Exhausted);
            Counter(text, "meshguard_outbound_ejections_total", "Times an endpoint was ejected for failures in a row (passive health).", outbound.Ejections);
            Counter(text, "meshguard_outbound_circuits_opened_total", "Times an endpoint's circuit opened (its failure ratio crossed the threshold).", outbound.CircuitsOpened);
            Counter(text, "meshguard_outbound_no_endpoint_total", "Requests answered 503 at once because every endpoint of the service was ejected.", outbound.NoEndpoint);
            Gauge(text, "meshguard_outbound_endpoints_ejected", "Endpoints ejected or with an open circuit, and not yet back to a success.", config.Routes.EjectedEndpoints);
            // What memory the managed heap holds beside the process's RSS: the rest is native (TLS, stacks, code).
            var gc = GC.GetGCMemoryInfo();
            Gauge(text, "dotnet_gc_heap_bytes", "Managed heap size after the last collection.", gc.HeapSizeBytes);
            Gauge(text, "dotnet_gc_committed_bytes", "Memory the GC has committed.", gc.TotalCommittedBytes);
            // Per generation, after the last collection: a heap that holds mostly gen2 between full collections
            // is promoted garbage; pinned buffer pools show as poh.
            text.Append("# HELP dotnet_gc_generation_bytes Size of each generation after the last collection.\n# TYPE dotnet_gc_generation_bytes gauge\n");
            var generations = gc.GenerationInfo;
            for (var g = 0; g < generations.Length && g < GenerationNames.Length; g++)
            {
                text.Append(CultureInfo.InvariantCulture, $"dotnet_gc_generation_bytes{{generation=\"{GenerationNames[g]}\"}} {generations[g].SizeAfterBytes}\n");
            }
            text.Append("# HELP dotnet_gc_collections_total Collections of each generation since start.\n# TYPE dotnet_gc_collections_total counter\n");
            for (var g = 0; g <= GC.MaxGeneration; g++)
            {
                text.Append(CultureInfo.InvariantCulture, $"dotnet_gc_collections_total{{generation=\"{GenerationNames[g]}\"}} {GC.CollectionCount(g)}\n");
            }
            // Free blocks go up and down (a gauge); blocks created only grow (a counter): flat under a
            // steady load, rising when the pool is too small for the load.
            var pools = new[] { ("large", MeshGuard.Proxy.Transport.DataPathBlocks.Large), ("small", MeshGuard.Proxy.Transport.DataPathBlocks.Small) };
            text.Append("# HELP meshguard_buffer_pool_free_blocks Data-path buffer blocks waiting to be rented.\n# TYPE meshguard_buffer_pool_free_blocks gauge\n");
            foreach (var (name, pool) in pools)
            {
                text.Append(CultureInfo.InvariantCulture, $"meshguard_buffer_pool_free_blocks{{pool=\"{name}\"}} {pool.Free}\n");
            }
            text.Append("# HELP meshguard_buffer_pool_blocks_created_total Data-path buffer blocks created since start.\n# TYPE meshguard_buffer_pool_blocks_created_total counter\n");
            foreach (var (name, pool) in pools)
            {
                text.Append(CultureInfo.InvariantCulture, $"meshguard_buffer_pool_blocks_created_total{{pool=\"{name}\"}} {pool.Created}\n");
            }
            Gauge(text, "process_resident_memory_bytes", "Resident memory of the sidecar.", Environment.WorkingSet);
            return Results.Text(text.ToString(), "text/plain; version=0.0.4");
        }).OnListener(port, loopbackHost: true);
    }

    private static readonly string[] GenerationNames = ["gen0", "gen1", "gen2", "loh", "poh"];

    private static void Counter(StringBuilder text, string name, string help, long value) =>
        text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");

    private static void Gauge(StringBuilder text, string name, string help, double value) =>
        text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
}
