using System.Globalization;

namespace MeshGuard.CommandLine;

/// <summary>A comma-separated list of ports given to a flag ("15000,15020"). Linked into the three programs.</summary>
internal static class PortList
{
    public static int[] Parse(string? text, string flag)
    {
        var ports = new List<int>();
        foreach (var part in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
            {
                throw new CliUsageException($"{flag}: '{part}' is not a port");
            }
            ports.Add(port);
        }
        return [.. ports];
    }
}
