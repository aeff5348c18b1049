using System.CommandLine;

namespace MeshGuard.Ctl.Demo;

internal static class DemoCommand
{
    public static Command Create()
    {
        var serve = new Option<bool>("--serve") { Description = "keep the mesh running until Ctrl-C" };
        var directory = new Option<string>("--dir") { Description = "where the demo keeps its state and logs", DefaultValueFactory = _ => ".meshguard-demo" };
        var policies = new Option<string>("--policies") { Description = "the AccessPolicy files the demo deploys", DefaultValueFactory = _ => "samples/policies" };
        var containers = new Option<bool>("--containers") { Description = "run the mesh as podman pods from the release's images (./meshguard.sh images builds them)" };
        var command = new Command("demo", "run a local mesh: control plane, three sample services with sidecars and their policies") { serve, directory, policies, containers };
        command.SetAction((parse, cancellation) => parse.GetValue(containers)
            ? ContainerDemoRun.RunAsync(parse.GetValue(directory)!, parse.GetValue(policies)!, cancellation)
            : DemoRun.RunAsync(parse.GetValue(directory)!, parse.GetValue(policies)!, parse.GetValue(serve), cancellation));
        return command;
    }
}
