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

    /// <summary>
    /// CPU seconds of each process and its children: the dead ones (cutime, cstime) and the live ones (a
    /// PostgreSQL server's backends, one per connection).
    /// </summary>
    public static double TreeCpuSeconds(IEnumerable<int> pids)
    {
        var roots = pids.ToHashSet();
        var total = 0.0;
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid))
            {
                continue;
            }
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(directory, "stat"));
            }
            catch (IOException)
            {
                continue;
            }
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var parent = int.Parse(fields[1], CultureInfo.InvariantCulture);
            if (roots.Contains(pid))
            {
                total += (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)
                    + long.Parse(fields[13], CultureInfo.InvariantCulture) + long.Parse(fields[14], CultureInfo.InvariantCulture)) / TicksPerSecond;
            }
            else if (roots.Contains(parent))
            {
                total += (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
            }
        }
        return total;
    }

    /// <summary>Resident set (VmRSS) or its peak (VmHWM), in MiB, summed over the replicas.</summary>
    public static double MiB(IEnumerable<int> pids, string field) => pids.Sum(pid =>
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024.0;
    });
}
