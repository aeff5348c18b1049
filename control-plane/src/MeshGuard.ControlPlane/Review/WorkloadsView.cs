using System.Globalization;
using System.Text;
using MeshGuard.Contracts.V1;
using MeshGuard.ControlPlane.FlowCollection;
using MeshGuard.ControlPlane.Sources;
using MeshGuard.ControlPlane.State;
using MeshGuard.Spiffe;
using static MeshGuard.ControlPlane.Review.ConsoleHtml;

namespace MeshGuard.ControlPlane.Review;

/// <summary>
/// Each workload identity the control plane knows (from its sidecar's attestation and stream, the registry,
/// or a collected log): its last SVID and when it expires, whether its sidecar's snapshot is current, the
/// policies that select it, and how its collected flow log verified.
/// </summary>
internal static class WorkloadsView
{
    public static string Render(WorkloadStatus status, ServiceTable services, PolicySnapshot policies, long currentVersion,
        IReadOnlyList<LogVerification> logs, DateTimeOffset now)
    {
        var sidecars = status.All().ToDictionary(static s => s.Key, static s => s.Value, StringComparer.Ordinal);
        var logOf = logs.ToDictionary(static l => l.Workload, StringComparer.Ordinal);
        var servicesOf = new Dictionary<string, SortedSet<string>>(StringComparer.Ordinal);
        foreach (var service in services.Services)
        {
            foreach (var endpoint in service.Endpoints)
            {
                if (!servicesOf.TryGetValue(endpoint.SpiffeId, out var names))
                {
                    servicesOf[endpoint.SpiffeId] = names = new SortedSet<string>(StringComparer.Ordinal);
                }
                names.Add($"{service.Name}.{service.Namespace} {endpoint.Address}");
            }
        }
        var identities = new SortedSet<string>(sidecars.Keys, StringComparer.Ordinal);
        identities.UnionWith(servicesOf.Keys);
        identities.UnionWith(logOf.Keys);

        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture, $"<p>Current config version {currentVersion}.</p>");
        html.Append("<table id=\"workloads\"><tr><th>identity</th><th>SVID serial</th><th>SVID expires</th><th>stream</th><th>version sent</th><th>services</th><th>selected by</th><th>flow log</th></tr>");
        foreach (var identity in identities)
        {
            var (serial, expiry, stream, sent) = ("-", "-", "not seen by this replica", "-");
            if (sidecars.TryGetValue(identity, out var sidecar))
            {
                var left = sidecar.SvidNotAfter - now;
                serial = sidecar.SvidSerial.Length == 0 ? "-" : sidecar.SvidSerial;
                expiry = sidecar.SvidSerial.Length == 0 ? "-"
                    : left <= TimeSpan.Zero ? $"{sidecar.SvidNotAfter:yyyy-MM-ddTHH:mm:ssZ} (expired)"
                    : $"{sidecar.SvidNotAfter:yyyy-MM-ddTHH:mm:ssZ} (in {(int)left.TotalMinutes} min)";
                stream = sidecar.OpenStreams == 0 ? "not connected"
                    : sidecar.SentVersion == currentVersion ? "connected, current" : "connected, behind";
                sent = sidecar.LastSent is { } at
                    ? string.Create(CultureInfo.InvariantCulture, $"{sidecar.SentVersion} ({(int)(now - at).TotalSeconds} s ago)")
                    : "-";
            }
            var selectedBy = SpiffeId.TryParse(identity, out var id, out _) && id.GetPathValue("ns") is { } ns && id.GetPathValue("sa") is { } sa
                ? string.Join(", ", policies.Set.Selecting(ns, sa).Select(static p => p.Id))
                : "";
            var log = logOf.TryGetValue(identity, out var verification) ? verification.Summary : "none collected";
            var problem = stream is "connected, behind" or "not connected" || (verification is not null && !verification.Verified);
            html.Append(CultureInfo.InvariantCulture, $"<tr class=\"{(problem ? "behind" : "ok")}\" data-identity=\"{E(identity)}\"><td>{E(identity)}</td><td>{E(serial)}</td><td>{E(expiry)}</td><td>{E(stream)}</td><td>{E(sent)}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{E(servicesOf.TryGetValue(identity, out var names) ? string.Join("\n", names) : "")}</td>")
                .Append(CultureInfo.InvariantCulture, $"<td>{(selectedBy.Length == 0 ? $"none: the mesh default ({E(policies.Set.MeshDefault.ToString())})" : E(selectedBy))}</td><td>{E(log)}</td></tr>");
        }
        return html.Append("</table>").ToString();
    }

    /// <summary>The registry: each service's endpoints and the identity each must present.</summary>
    public static string Endpoints(ServiceTable table)
    {
        var html = new StringBuilder("<table id=\"endpoints\"><tr><th>service</th><th>namespace</th><th>address</th><th>identity</th></tr>");
        foreach (var service in table.Services.OrderBy(static s => s.Namespace, StringComparer.Ordinal).ThenBy(static s => s.Name, StringComparer.Ordinal))
        {
            foreach (var endpoint in service.Endpoints)
            {
                html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(service.Name)}</td><td>{E(service.Namespace)}</td><td>{E(endpoint.Address)}</td><td>{E(endpoint.SpiffeId)}</td></tr>");
            }
        }
        return html.Append("</table>").ToString();
    }
}
