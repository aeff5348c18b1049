using System.CommandLine;
using MeshGuard.Ctl.Commands;
using MeshGuard.Ctl.Demo;

var root = new RootCommand("meshctl: the MeshGuard command line")
{
    TokenCommand.Create(),
    BundleCommand.Create(),
    CertsCommand.Create(),
    PolicyCommand.Create(),
    AuthzCommand.Create(),
    FlowsCommand.Create(),
    IdentityCommand.Create(),
    InjectCommand.Create(),
    ConsoleCommand.Create(),
    DemoCommand.Create(),
};
// Ctrl-C or SIGTERM cancels the command; the demo then stops its processes (up to 10 s each, in parallel).
return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(30) });
