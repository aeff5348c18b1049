using System.Globalization;
using MeshGuard.ControlPlane.Registry;
using MeshGuard.ControlPlane.Store;

namespace MeshGuard.ControlPlane.Admin;

/// <summary>Health and a few gauges on the admin port (127.0.0.1 only).</summary>
internal static class AdminEndpoints
{
    public static void Map(IEndpointRouteBuilder app, string host)
    {
        app.MapGet("/healthz", () => Results.Text("ok\n")).RequireHost(host);
        // Ready while it serves; refused policy files are listed as detail (their last good version is in force).
        app.MapGet("/readyz", (PolicyStore policies) =>
        {
            var text = new System.Text.StringBuilder("ready\n");
            var snapshot = policies.Current;
            text.Append(CultureInfo.InvariantCulture, $"policy version {snapshot.Version}: {snapshot.Set.Policies.Count} policies in force\n");
            foreach (var file in snapshot.Files)
            {
                foreach (var error in file.Errors)
                {
                    text.Append("refused: ").Append(error).Append('\n');
                }
            }
            return Results.Text(text.ToString());
        }).RequireHost(host);
        app.MapGet("/metrics", (ServiceRegistry registry) =>
        {
            var table = registry.Current;
            var endpoints = 0;
            foreach (var service in table.Services)
            {
                endpoints += service.Endpoints.Count;
            }
            var text = string.Create(CultureInfo.InvariantCulture,
                $"# TYPE meshguard_cp_registry_version gauge\nmeshguard_cp_registry_version {table.Version}\n" +
                $"# TYPE meshguard_cp_registered_endpoints gauge\nmeshguard_cp_registered_endpoints {endpoints}\n");
            return Results.Text(text, "text/plain; version=0.0.4");
        }).RequireHost(host);
    }
}
