using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Common.DataDir;

/// <summary>
/// Secure naming: which identities may serve a service, decided by the platform and never claimed by a workload.
/// By default a service <c>S</c> of namespace <c>N</c> is served only by <c>spiffe://TD/ns/N/sa/S</c>, the service
/// account of the same name. <c>service-bindings.txt</c> in the data directory (or its text in etcd) names others,
/// one binding a line: <c>NAMESPACE/SERVICE SPIFFE-ID</c>, <c>#</c> starts a comment. The identity must be of that
/// namespace. A file with a bad line is refused as a whole, with file, line and reason.
/// </summary>
public sealed class ServiceBindings
{
    private readonly Dictionary<(string Namespace, string Service), SpiffeId[]> _explicit;

    private ServiceBindings(Dictionary<(string Namespace, string Service), SpiffeId[]> bindings) => _explicit = bindings;

    public static ServiceBindings None { get; } = new([]);

    /// <summary>How many explicit bindings there are.</summary>
    public int Count => _explicit.Count;

    /// <summary>Whether <paramref name="id"/> may serve <paramref name="service"/> (of the ID's own namespace, as registrations are).</summary>
    public bool MayServe(string service, string ns, SpiffeId id)
    {
        if (id.GetPathValue("ns") != ns)
        {
            return false;
        }
        if (id == SpiffeId.ForWorkload(id.TrustDomain, ns, service))
        {
            return true;
        }
        return _explicit.TryGetValue((ns, service), out var allowed) && Array.IndexOf(allowed, id) >= 0;
    }

    /// <summary>Every identity that may serve the service: the default one, then the explicit ones.</summary>
    public List<string> AllowedFor(string service, string ns, string trustDomain)
    {
        var allowed = new List<string> { SpiffeId.ForWorkload(trustDomain, ns, service).ToString() };
        if (_explicit.TryGetValue((ns, service), out var more))
        {
            foreach (var id in more)
            {
                allowed.Add(id.ToString());
            }
        }
        return allowed;
    }

    /// <summary>Why <paramref name="id"/> may not serve <paramref name="service"/>, in words a refused sidecar is told.</summary>
    public static string Refusal(string service, string ns, SpiffeId id) =>
        $"{id} may not serve service '{service}' of namespace '{ns}': a service is served by the service account of its name " +
        "unless the platform binds another identity to it (service-bindings)";

    public static ServiceBindings Parse(string text, string source, out string? error)
    {
        error = null;
        var bindings = new Dictionary<(string, string), List<SpiffeId>>();
        foreach (var (lineNumber, line) in ListFileLines.Read(text))
        {
            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            var slash = parts[0].IndexOf('/', StringComparison.Ordinal);
            if (parts.Length != 2 || slash <= 0 || slash == parts[0].Length - 1)
            {
                error = $"{source}:{lineNumber}: expected 'NAMESPACE/SERVICE SPIFFE-ID'";
                return None;
            }
            var (ns, service) = (parts[0][..slash], parts[0][(slash + 1)..]);
            if (!SpiffeId.TryParseWorkload(parts[1], out var id, out var reason))
            {
                error = $"{source}:{lineNumber}: '{parts[1]}' is not a workload SPIFFE ID: {reason}";
                return None;
            }
            if (id.GetPathValue("ns") != ns)
            {
                error = $"{source}:{lineNumber}: {id} is not of namespace '{ns}': a service is served from its own namespace";
                return None;
            }
            if (!bindings.TryGetValue((ns, service), out var ids))
            {
                bindings[(ns, service)] = ids = [];
            }
            ids.Add(id);
        }
        var result = new Dictionary<(string Namespace, string Service), SpiffeId[]>();
        foreach (var (key, ids) in bindings)
        {
            result[key] = [.. ids];
        }
        return new ServiceBindings(result);
    }
}
