using System.CommandLine;
using MeshGuard.Ctl.Commands;
using MeshGuard.Ctl.Demo;

var root = new RootCommand("meshctl: the MeshGuard command line")
{
    TokenCommand.Create(),
    BundleCommand.Create(),
    CertsCommand.Create(),
    DemoCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
