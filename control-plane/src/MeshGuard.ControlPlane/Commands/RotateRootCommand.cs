using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Common.DataDir;

namespace MeshGuard.ControlPlane.Commands;

/// <summary>
/// meshguard-cp rotate-root prepare|activate|retire --data DIR: the three steps of a root rotation (RootRotation).
/// </summary>
internal static class RotateRootCommand
{
    public static Command Create()
    {
        var rotate = new Command("rotate-root", "rotate the mesh root with an overlapping bundle: prepare, activate, retire; restart the control plane after each step");
        foreach (var (name, description, step) in new (string, string, Func<DataDirectory, TimeProvider, string>)[]
        {
            ("prepare", "make the next root; the bundle holds both (the old one still signs)", RootRotation.Prepare),
            ("activate", "the next root signs from now; the old one stays trusted until retired", RootRotation.Activate),
            ("retire", "take the old roots out of the bundle and delete their keys", RootRotation.Retire),
        })
        {
            var dataOption = CliOption.Text("--data", "control-plane data directory");
            var command = new Command(name, description) { dataOption };
            command.SetAction(parse =>
            {
                try
                {
                    var directory = new DataDirectory(CliOption.Required(parse, dataOption));
                    directory.RequireExists();
                    Console.WriteLine(step(directory, TimeProvider.System));
                    return 0;
                }
                catch (Exception e) when (e is CliUsageException or InsecureFileException or InvalidOperationException or IOException or UnauthorizedAccessException)
                {
                    Console.Error.WriteLine($"meshguard-cp rotate-root {name}: {e.Message}");
                    return e is CliUsageException ? 2 : 1;
                }
            });
            rotate.Subcommands.Add(command);
        }
        return rotate;
    }
}
