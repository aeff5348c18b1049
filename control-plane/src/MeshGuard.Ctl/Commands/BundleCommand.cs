using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.Contracts.DataDir;
using MeshGuard.Spiffe;

namespace MeshGuard.Ctl.Commands;

/// <summary><c>meshctl bundle show</c>: the trust bundle PEM.</summary>
internal static class BundleCommand
{
    public static Command Create()
    {
        var data = CliOption.Text("--data", "control-plane data directory");
        var show = new Command("show", "print the trust bundle (PEM)") { data };
        show.SetAction(parse => Cli.Run(() =>
        {
            var directory = new DataDirectory(CliOption.Required(parse, data));
            directory.RequireExists();
            // Parse before printing: a damaged bundle is an error, not output.
            Console.Write(TrustBundle.Load(directory.TrustBundle).ToPem());
        }));
        return new Command("bundle", "the mesh trust bundle") { show };
    }
}
