using System.Globalization;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.Hosting;

namespace MeshGuard.ControlPlane.Admin;

/// <summary>Health and a few gauges on the admin port (127.0.0.1 only).</summary>
internal static class AdminEndpoints
{
    public static void Map(IEndpointRouteBuilder app, int port)
    {
        app.MapGet("/healthz", () => Results.Text("ok\n")).OnListener(port, loopbackHost: true);
        // Ready while it serves; refused policy files are listed as detail (their last good version is in force).
        // With etcd: a replica that lost etcd stays ready, serving the last state it read (as sidecars keep their last snapshot).
        var etcd = app.ServiceProvider.GetService<SharedState.EtcdMeshState>();
        var leadership = app.ServiceProvider.GetService<SharedState.EtcdLeadership>();
        app.MapGet("/readyz", (PolicyStore policies) =>
        {
            var text = new System.Text.StringBuilder("ready\n");
            var snapshot = policies.Current;
            text.Append(CultureInfo.InvariantCulture, $"policy version {snapshot.Version}: {snapshot.Set.Policies.Count} policies in force\n");
            if (etcd is not null)
            {
                text.Append(CultureInfo.InvariantCulture,
                    $"etcd: {(etcd.Connected ? "watching" : "not connected, the last state stays in force")}, revision {etcd.Current.Revision}{(leadership?.IsLeader == true ? ", leader" : "")}\n");
            }
            foreach (var file in snapshot.Files)
            {
                foreach (var error in file.Errors)
                {
                    text.Append("refused: ").Append(error).Append('\n');
                }
            }
            return Results.Text(text.ToString());
        }).OnListener(port, loopbackHost: true);
        app.MapGet("/metrics", (ServiceRegistry registry, Distribution.ConfigDistributor distributor, MeshGuard.FlowStore.IFlowSegmentStore collected,
            Hosting.KestrelBlocks blocks, IServiceProvider services) =>
        {
            var table = registry.Current;
            var endpoints = 0;
            foreach (var service in table.Services)
            {
                endpoints += service.Endpoints.Count;
            }
            var text = string.Create(CultureInfo.InvariantCulture,
                $"# TYPE meshguard_cp_registry_version gauge\nmeshguard_cp_registry_version {table.Version}\n" +
                $"# TYPE meshguard_cp_registered_endpoints gauge\nmeshguard_cp_registered_endpoints {endpoints}\n" +
                $"# TYPE meshguard_cp_config_version gauge\nmeshguard_cp_config_version {distributor.Current.Version}\n" +
                $"# TYPE meshguard_cp_flow_lines_collected_total counter\nmeshguard_cp_flow_lines_collected_total {collected.LinesCollected}\n" +
                $"# TYPE meshguard_cp_flow_segments_refused_total counter\nmeshguard_cp_flow_segments_refused_total {collected.SegmentsRefused}\n" +
                $"# TYPE meshguard_cp_buffer_blocks_created_total counter\nmeshguard_cp_buffer_blocks_created_total {blocks.Created}\n" +
                $"# TYPE meshguard_cp_buffer_free_blocks gauge\nmeshguard_cp_buffer_free_blocks {blocks.Free}\n");
            if (etcd is not null)
            {
                text += string.Create(CultureInfo.InvariantCulture,
                    $"# TYPE meshguard_cp_store_connected gauge\nmeshguard_cp_store_connected {(etcd.Connected ? 1 : 0)}\n" +
                    $"# TYPE meshguard_cp_store_revision gauge\nmeshguard_cp_store_revision {etcd.Current.Revision}\n" +
                    $"# TYPE meshguard_cp_leader gauge\nmeshguard_cp_leader {(leadership?.IsLeader == true ? 1 : 0)}\n");
            }
            if (services.GetService<FlowCollection.FlowStoreAudit>() is { } audit)
            {
                text += string.Create(CultureInfo.InvariantCulture,
                    $"# TYPE meshguard_cp_flow_chains_broken gauge\nmeshguard_cp_flow_chains_broken {audit.Broken}\n");
            }
            return Results.Text(text, "text/plain; version=0.0.4");
        }).OnListener(port, loopbackHost: true);
    }
}
