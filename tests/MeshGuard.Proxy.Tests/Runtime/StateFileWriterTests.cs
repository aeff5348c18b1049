using MeshGuard.Proxy.Runtime;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Logging.Abstractions;

namespace MeshGuard.Proxy.Tests.Runtime;

/// <summary>The state directory is written on the writer's own thread: a caller never waits on the disk, and nothing queued is lost.</summary>
public sealed class StateFileWriterTests : IDisposable
{
    private static readonly TimeSpan Enough = TimeSpan.FromSeconds(10);
    private readonly TempDirectory _state = new();
    private readonly StateFileWriter _writer = new(NullLogger.Instance);

    [Fact]
    public void AWriteReturnsWhileTheDiskIsHeldAndTheFileIsThereOwnerOnlyOnceItIsLetGo()
    {
        using var disk = new SemaphoreSlim(0);
        _writer.Gate = disk;
        var key = Path.Combine(_state.Path, "svid.key");

        _writer.Write(key, "secret", secret: true);

        Assert.False(_writer.Flush(TimeSpan.FromMilliseconds(200)), "the flush returned while the disk was held");
        Assert.False(File.Exists(key));
        disk.Release();
        Assert.True(_writer.Flush(Enough));
        Assert.Equal("secret", File.ReadAllText(key));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
    }

    [Fact]
    public void TheNewestContentsOfAFileQueuedTwiceAreWhatStaysOnDisk()
    {
        using var disk = new SemaphoreSlim(0);
        _writer.Gate = disk;
        var snapshot = Path.Combine(_state.Path, "snapshot.cms");
        var addresses = Path.Combine(_state.Path, "control-plane-grpc.txt");

        _writer.Write(addresses, "a\n", secret: false);
        _writer.Write(snapshot, "version 10", secret: true);
        _writer.Write(snapshot, "version 11", secret: true);
        disk.Release();

        Assert.True(_writer.Flush(Enough));
        Assert.Equal("version 11", File.ReadAllText(snapshot));
        Assert.Equal("a\n", File.ReadAllText(addresses));
        Assert.Equal(0, _writer.Failed);
    }

    [Fact]
    public void AFileThatCannotBeWrittenIsCountedAndTheFilesAfterItAreStillWritten()
    {
        // A plain file where the directory should be: the write fails as on a broken disk.
        var notADirectory = Path.Combine(_state.Path, "occupied");
        File.WriteAllText(notADirectory, "");
        var after = Path.Combine(_state.Path, "bundle.pem");

        _writer.Write(Path.Combine(notADirectory, "svid.pem"), "chain", secret: true);
        _writer.Write(after, "bundle", secret: true);

        Assert.True(_writer.Flush(Enough));
        Assert.Equal(1, _writer.Failed);
        Assert.Equal("bundle", File.ReadAllText(after));
    }

    public void Dispose()
    {
        _writer.Dispose();
        _state.Dispose();
    }
}
