using System.CommandLine;

namespace MeshGuard.Ctl.Demo;

internal static class DemoCommand
{
    public static Command Create()
    {
        var serve = new Option<bool>("--serve") { Description = "keep the mesh running until Ctrl-C" };
        var directory = new Option<string>("--dir") { Description = "where the demo keeps its state and logs", DefaultValueFactory = _ => ".meshguard-demo" };
        var command = new Command("demo", "run a local mesh: control plane, three sample services with sidecars") { serve, directory };
        command.SetAction((parse, cancellation) => DemoRun.RunAsync(parse.GetValue(directory)!, parse.GetValue(serve), cancellation));
        return command;
    }
}
