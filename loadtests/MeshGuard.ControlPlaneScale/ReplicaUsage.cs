using System.Globalization;

namespace MeshGuard.ControlPlaneScale;

/// <summary>CPU seconds and resident memory of the replicas' processes, read from /proc.</summary>
internal static class ReplicaUsage
{
    private static readonly double TicksPerSecond = 100; // USER_HZ on Linux

    public static double CpuSeconds(IEnumerable<int> pids) => pids.Sum(static pid =>
    {
        // After the ")" of the command: state is field 3, utime 14 and stime 15.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
    });

    /// <summary>Resident set (VmRSS) or its peak (VmHWM), in MiB, summed over the replicas.</summary>
    public static double MiB(IEnumerable<int> pids, string field) => pids.Sum(pid =>
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
    });
}
