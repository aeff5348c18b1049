using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A test class with a mesh of its own: a temporary directory, a <see cref="LocalMesh"/> in it, and the apps the
/// tests start in this process. Everything is stopped in order when the class is done: the mesh's processes
/// first, then the apps, then the directory.
/// </summary>
public abstract class MeshTest : IAsyncLifetime
{
    private readonly TempDirectory _temp = new();
    private readonly List<RecordingApp> _apps = [];

    protected LocalMesh Mesh { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        Mesh = new LocalMesh(_temp.Path);
        await StartAsync();
    }

    /// <summary>What every test of the class needs first (a control plane, usually).</summary>
    protected virtual Task StartAsync() => Task.CompletedTask;

    /// <summary>A recording app that lives as long as the class's mesh (or until <see cref="StopAppAsync"/>).</summary>
    protected async Task<RecordingApp> StartAppAsync(string name, int port = 0, HttpProtocols protocols = HttpProtocols.Http1)
    {
        var app = await RecordingApp.StartAsync(name, protocols, port);
        _apps.Add(app);
        return app;
    }

    /// <summary>Stops an app now, as a crash of the app would (its port is free for a new one).</summary>
    protected async Task StopAppAsync(RecordingApp app)
    {
        _apps.Remove(app);
        await app.DisposeAsync();
    }

    public virtual async Task DisposeAsync()
    {
        await Mesh.DisposeAsync();
        foreach (var app in _apps)
        {
            await app.DisposeAsync();
        }
        _temp.Dispose();
    }
}
