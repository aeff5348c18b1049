using System.Globalization;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A MeshGuard server (and the sample app its images ship) takes its settings from its command line and watches no file tree it was not asked to: in
/// particular not its working directory, which is "/" in the images. A host that reloads configuration files on
/// change sets a recursive watch there, and so walks and watches every directory below at start (a sidecar of the
/// image took one to 27 s to be ready from "/", against a quarter of a second without).
/// </summary>
[Collection(nameof(MeshCollection))]
public sealed class WorkingDirectoryTests(MeshFixture mesh)
{
    [Fact]
    public async Task NeitherTheControlPlaneNorASidecarWatchesItsWorkingDirectory()
    {
        var servers = mesh.Mesh.Processes.Where(static p => p.Name.StartsWith("control-plane", StringComparison.Ordinal) || p.Name.EndsWith("-sidecar", StringComparison.Ordinal)).ToList();
        Assert.Contains(servers, static p => p.Name.EndsWith("-sidecar", StringComparison.Ordinal));
        Assert.Contains(servers, static p => p.Name.StartsWith("control-plane", StringComparison.Ordinal));
        foreach (var server in servers)
        {
            var cwd = new DirectoryInfo($"/proc/{server.Id}/cwd").LinkTarget!;
            var (exit, inode) = await MeshGuard.Tests.Common.ExternalProcess.RunAsync("/usr/bin/stat", ["-c", "%i", cwd]);
            Assert.Equal(0, exit);
            var watched = WatchedInodes(server.Id);
            Assert.DoesNotContain(long.Parse(inode.Trim(), CultureInfo.InvariantCulture), watched);
            if (server.Name.EndsWith("-sidecar", StringComparison.Ordinal))
            {
                // A sidecar reads its files once (bundle, key, state); it watches nothing at all.
                Assert.True(watched.Count == 0, $"{server.Name} holds {watched.Count} inotify watches");
            }
        }
    }

    [Fact]
    public async Task TheSampleAppItsImageShipsWatchesNothing()
    {
        using var temp = new MeshGuard.Tests.Common.TempDirectory();
        var port = MeshGuard.Ctl.Demo.LocalMesh.FreePorts(1)[0];
        await using var app = MeshGuard.Ctl.Demo.MeshProcess.Start("sample-app", "meshguard-sample",
            ["--name", "sample", "--port", port.ToString(CultureInfo.InvariantCulture)], temp.Combine("sample.log"));
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                using var answer = await client.GetAsync(new Uri($"http://127.0.0.1:{port}/"));
                break;
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline && !app.HasExited)
            {
                await Task.Delay(50);
            }
        }
        var watched = WatchedInodes(app.Id);
        Assert.True(watched.Count == 0, $"the sample app holds {watched.Count} inotify watches");
    }

    /// <summary>The inodes a process's inotify instances watch, from /proc/PID/fdinfo ("inotify wd:1 ino:1a2b ...").</summary>
    private static List<long> WatchedInodes(int pid)
    {
        var inodes = new List<long>();
        foreach (var fdinfo in Directory.EnumerateFiles($"/proc/{pid}/fdinfo"))
        {
            string[] lines;
            try
            {
                lines = File.ReadAllLines(fdinfo);
            }
            catch (IOException)
            {
                continue; // the descriptor closed meanwhile
            }
            foreach (var line in lines)
            {
                if (!line.StartsWith("inotify wd:", StringComparison.Ordinal))
                {
                    continue;
                }
                var ino = line.Split(' ').Single(static f => f.StartsWith("ino:", StringComparison.Ordinal))[4..];
                inodes.Add(long.Parse(ino, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            }
        }
        return inodes;
    }
}
