using System.Net;

namespace MeshGuard.ControlPlane.Attestation;

/// <summary>Checks what a sidecar registers: a DNS-label service name and a host:port address.</summary>
internal static class Registration
{
    public static bool TryValidate(string? service, string? address, out string? error)
    {
        if (string.IsNullOrEmpty(service) || service.Length > 63 || !IsDnsLabel(service))
        {
            error = $"service name '{service}' must be a DNS label (a-z, 0-9, '-', at most 63)";
            return false;
        }
        if (string.IsNullOrEmpty(address) || !IPEndPoint.TryParse(address, out var endpoint) || endpoint.Port == 0)
        {
            error = $"inbound address '{address}' must be ip:port";
            return false;
        }
        error = null;
        return true;
    }

    private static bool IsDnsLabel(string name)
    {
        if (name[0] == '-' || name[^1] == '-')
        {
            return false;
        }
        foreach (var c in name)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'))
            {
                return false;
            }
        }
        return true;
    }
}
