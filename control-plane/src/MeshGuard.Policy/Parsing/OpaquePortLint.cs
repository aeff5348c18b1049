using MeshGuard.Policy.Model;

namespace MeshGuard.Policy.Parsing;

/// <summary>
/// What a rule means on ports declared opaque (TCP, decided per connection, no method, path or headers): a rule
/// that names methods, paths or headers and reaches such a port denies every connection there when it is a deny
/// rule, and allows none when it is an allow rule. Not a mistake, but rarely what its author meant: lint says so.
/// </summary>
public static class OpaquePortLint
{
    public static IEnumerable<string> Notes(PolicyFileResult file, IReadOnlyCollection<int> opaquePorts)
    {
        if (opaquePorts.Count == 0)
        {
            yield break;
        }
        foreach (var policy in file.Policies)
        {
            foreach (var rule in policy.Rules)
            {
                var headers = rule.When.Count > 0;
                // No "to" at all reaches every port; each entry reaches its ports, or every port without any.
                var destinations = rule.To.Count == 0 ? [new PolicyDestination()] : rule.To;
                foreach (var destination in destinations)
                {
                    var http = destination.Methods.Count > 0 || destination.Paths.Count > 0 || headers;
                    if (!http)
                    {
                        continue;
                    }
                    foreach (var port in opaquePorts)
                    {
                        if (destination.Ports.Count > 0 && !destination.Ports.Contains(port))
                        {
                            continue;
                        }
                        yield return policy.Action == PolicyAction.Deny
                            ? $"{file.File}: policy {policy.Id} rule {rule.Name}: names methods, paths or headers; on opaque port {port} it denies every connection of its callers (fails closed)"
                            : $"{file.File}: policy {policy.Id} rule {rule.Name}: names methods, paths or headers; on opaque port {port} it allows no connection";
                    }
                }
            }
        }
    }
}
