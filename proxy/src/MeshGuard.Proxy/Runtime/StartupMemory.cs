using System.Globalization;
using System.Runtime.InteropServices;

namespace MeshGuard.Proxy.Runtime;

/// <summary>
/// Gives back, once the sidecar serves and its start has settled, the memory only its start used. Starting allocates
/// some 13 MB (the host, its configuration, Kestrel's and the telemetry's set-up) of which under 1 MB stays, and reads
/// much of the executable: the kernel maps a file's pages around each one touched, so the NativeAOT sidecar held 19-20
/// MB of its 23 MB image when ready; under load it maps 13-16 of them back.
/// <list type="number">
/// <item>One compacting collection that returns the heap's free space to the system
/// (<see cref="GCCollectionMode.Aggressive"/>): committed heap 10 -> 4 MB when idle.</item>
/// <item>Each read-only mapping of the executable that holds no page of its own (none written by this process:
/// relocated data is left alone) leaves the process (<c>madvise(MADV_DONTNEED)</c>). A page used again is mapped again
/// from the page cache on its first touch, with the same octets, the file and the mapping being read-only. The page
/// cache keeps the pages for every process that maps the file (other sidecars, the next start); this process's
/// resident set counts only those it uses again.</item>
/// </list>
/// Measured in ARCHITECTURE.md. Where <c>/proc</c> is not there (not Linux) the pages stay.
/// </summary>
internal static partial class StartupMemory
{
    private const int DontNeed = 4; // MADV_DONTNEED

    /// <summary>One mapping of <c>/proc/self/smaps</c>: its range, permissions, file and its resident and own (anonymous) KiB.</summary>
    internal readonly record struct Mapping(ulong Start, ulong End, string Permissions, string Path, long ResidentKiB, long AnonymousKiB)
    {
        /// <summary>
        /// Of <paramref name="image"/>, private, not writable, resident, and with no page this process wrote: dropping it
        /// loses nothing.
        /// </summary>
        public bool ReleasableFrom(string image) =>
            Path == image && Permissions.Length >= 4 && Permissions[1] == '-' && Permissions[3] == 'p' && AnonymousKiB == 0 && ResidentKiB > 0;
    }

    /// <summary>
    /// How long after the listeners start: the hosted services have started, the first snapshot is applied and the first
    /// connections are made by then, and the sidecar's readiness (measured from its start) does not wait on the pause.
    /// </summary>
    internal static readonly TimeSpan Settle = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The start's garbage and its pages of the executable go; says what went, for the log: the KiB of pages (or why
    /// none) and the time it took.
    /// </summary>
    internal static string ReleaseOnce(TimeProvider time)
    {
        var started = time.GetTimestamp();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        var released = ReleasePages(Environment.ProcessPath);
        var took = time.GetElapsedTime(started).TotalMilliseconds.ToString("F1", CultureInfo.InvariantCulture);
        return (released is { } kib ? kib.ToString(CultureInfo.InvariantCulture) + "KiB" : "unsupported") + $",{took}ms";
    }

    /// <summary>
    /// Drops the releasable mappings of <paramref name="image"/> (<see cref="Mapping.ReleasableFrom"/>) from this process;
    /// the KiB they held, or null where there is no <c>/proc/self/smaps</c>.
    /// </summary>
    internal static long? ReleasePages(string? image)
    {
        if (!OperatingSystem.IsLinux() || image is null || !File.Exists("/proc/self/smaps"))
        {
            return null;
        }
        image = System.IO.Path.GetFullPath(image);
        List<Mapping> mappings;
        using (var smaps = new StreamReader("/proc/self/smaps"))
        {
            mappings = Parse(smaps);
        }
        long released = 0;
        foreach (var mapping in mappings)
        {
            if (mapping.ReleasableFrom(image) && Advise((nint)mapping.Start, (nuint)(mapping.End - mapping.Start), DontNeed) == 0)
            {
                released += mapping.ResidentKiB;
            }
        }
        return released;
    }

    /// <summary>The mappings of an smaps listing, in order.</summary>
    internal static List<Mapping> Parse(TextReader smaps)
    {
        var mappings = new List<Mapping>();
        (ulong Start, ulong End, string Permissions, string Path)? head = null;
        long resident = 0, anonymous = 0;
        while (smaps.ReadLine() is { } line)
        {
            if (TryParseHead(line, out var next))
            {
                if (head is { } done)
                {
                    mappings.Add(new Mapping(done.Start, done.End, done.Permissions, done.Path, resident, anonymous));
                }
                head = next;
                resident = anonymous = 0;
            }
            else if (line.StartsWith("Rss:", StringComparison.Ordinal))
            {
                resident = KiB(line);
            }
            else if (line.StartsWith("Anonymous:", StringComparison.Ordinal))
            {
                anonymous = KiB(line);
            }
        }
        if (head is { } last)
        {
            mappings.Add(new Mapping(last.Start, last.End, last.Permissions, last.Path, resident, anonymous));
        }
        return mappings;
    }

    // "55a436c54000-55a437744000 r-xp 00029000 fd:01 1234 /path/to/file": a range, permissions, offset, device, inode, path.
    private static bool TryParseHead(string line, out (ulong Start, ulong End, string Permissions, string Path) head)
    {
        head = default;
        var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 5)
        {
            return false;
        }
        var range = fields[0].AsSpan();
        var dash = range.IndexOf('-');
        if (dash <= 0
            || !ulong.TryParse(range[..dash], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var start)
            || !ulong.TryParse(range[(dash + 1)..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var end))
        {
            return false;
        }
        head = (start, end, fields[1], fields.Length == 6 ? fields[5].Trim() : "");
        return true;
    }

    private static long KiB(string line)
    {
        var value = line.AsSpan(line.IndexOf(':', StringComparison.Ordinal) + 1).Trim();
        var space = value.IndexOf(' ');
        return long.TryParse(space < 0 ? value : value[..space], NumberStyles.None, CultureInfo.InvariantCulture, out var kib) ? kib : 0;
    }

    [LibraryImport("libc.so.6", EntryPoint = "madvise")]
    private static partial int Advise(nint address, nuint length, int advice);
}
