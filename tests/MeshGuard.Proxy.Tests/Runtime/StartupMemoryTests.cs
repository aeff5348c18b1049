using System.Runtime.InteropServices;
using MeshGuard.Proxy.Runtime;

namespace MeshGuard.Proxy.Tests.Runtime;

/// <summary>
/// The pages of the executable only the start used leave the process, and nothing is lost: a page dropped is mapped
/// again with the file's octets; a mapping this process wrote to (relocated data), a writable or a shared one, or
/// another file's, stays. The real mechanism: a file mapped read-only and private, as the loader maps an image.
/// </summary>
public sealed partial class StartupMemoryTests
{
    // As the kernel lists them: a head line (range, permissions, offset, device, inode, path), then sizes in kB.
    private static readonly string Listing = string.Concat(
        Entry("55a436c2b000-55a436c54000 r--p 00000000 fd:01 4242 /opt/meshguard/meshguard-proxy", size: 164, resident: 164, anonymous: 0),
        Entry("55a436c54000-55a437744000 r-xp 00029000 fd:01 4242 /opt/meshguard/meshguard-proxy", size: 11200, resident: 10176, anonymous: 0),
        Entry("55a437d67000-55a4381c5000 r--p 0159a000 fd:01 4242 /opt/meshguard/meshguard-proxy", size: 4472, resident: 3708, anonymous: 12),
        Entry("55a4381c7000-55a43821b000 rw-p 0159c000 fd:01 4242 /opt/meshguard/meshguard-proxy", size: 336, resident: 336, anonymous: 136),
        Entry("7fb0b20c5000-7fb0b2342000 r-xp 000c5000 fd:01 77 /usr/lib/x86_64-linux-gnu/libcrypto.so.3", size: 2548, resident: 2548, anonymous: 0),
        Entry("7fb0b3000000-7fb0b3041000 rw-p 00000000 00:00 0", size: 260, resident: 192, anonymous: 192),
        Entry("7fb0b4000000-7fb0b4100000 r--s 00000000 fd:01 4242 /opt/meshguard/meshguard-proxy", size: 1024, resident: 512, anonymous: 0));

    private static string Entry(string head, int size, int resident, int anonymous) =>
        $"{head}\nSize: {size,14} kB\nRss: {resident,15} kB\nAnonymous: {anonymous,9} kB\n";

    [Fact]
    public void OnlyTheExecutablesReadOnlyPrivateMappingsNoPageOfWhichWasWrittenAreReleasable()
    {
        var mappings = StartupMemory.Parse(new StringReader(Listing));

        Assert.Equal(7, mappings.Count);
        Assert.Equal(new StartupMemory.Mapping(0x55a436c54000, 0x55a437744000, "r-xp", "/opt/meshguard/meshguard-proxy", 10176, 0), mappings[1]);
        Assert.Equal("", mappings[5].Path);
        var releasable = mappings.Where(m => m.ReleasableFrom("/opt/meshguard/meshguard-proxy")).Select(m => m.Permissions + " " + m.ResidentKiB).ToList();
        // The relocated read-only data (12 KiB written), the writable data, the other library, the anonymous and the
        // shared mapping stay.
        Assert.Equal(["r--p 164", "r-xp 10176"], releasable);
    }

    [Fact]
    public void AReleasedPageLeavesTheResidentSetAndReadsBackTheFilesOctets()
    {
        const int Length = 4 * 1024 * 1024;
        var path = Path.Combine(Path.GetTempPath(), $"meshguard-startup-memory-{Guid.NewGuid():N}.bin");
        var octets = new byte[Length];
        Random.Shared.NextBytes(octets);
        File.WriteAllBytes(path, octets);
        using var file = File.OpenHandle(path);
        var address = Map(0, Length, ProtRead, MapPrivate, (int)file.DangerousGetHandle(), 0);
        Assert.NotEqual(-1, address);
        try
        {
            for (var offset = 0; offset < Length; offset += 4096)
            {
                Assert.Equal(octets[offset], Marshal.ReadByte(address, offset));
            }
            Assert.Equal(Length / 1024, ResidentKiBOf(path));

            var released = StartupMemory.ReleasePages(path);

            Assert.Equal(Length / 1024, released);
            Assert.Equal(0, ResidentKiBOf(path));
            var again = new byte[Length];
            Marshal.Copy(address, again, 0, Length);
            Assert.Equal(octets, again);
        }
        finally
        {
            Assert.Equal(0, Unmap(address, Length));
            File.Delete(path);
        }
    }

    private static long ResidentKiBOf(string path)
    {
        using var smaps = new StreamReader("/proc/self/smaps");
        return StartupMemory.Parse(smaps).Where(m => m.Path == path).Sum(m => m.ResidentKiB);
    }

    private const int ProtRead = 1;
    private const int MapPrivate = 2;

    [LibraryImport("libc.so.6", EntryPoint = "mmap")]
    private static partial nint Map(nint address, nuint length, int protection, int flags, int descriptor, long offset);

    [LibraryImport("libc.so.6", EntryPoint = "munmap")]
    private static partial int Unmap(nint address, nuint length);
}
