using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Spiffe;

namespace MeshGuard.Ctl.Commands;

/// <summary><c>meshctl bundle show</c>: the trust bundle PEM.</summary>
internal static class BundleCommand
{
    public static Command Create()
    {
        var data = CliOption.Text("--data", "control-plane data directory");
        var store = SharedStore.Option();
        var show = new Command("show", "print the trust bundle (PEM)") { data, store };
        show.SetAction(parse => Cli.RunAsync(async () =>
        {
            var bundle = await SharedStore.FromEitherAsync(parse, store, data,
                static directory => TrustBundle.Load(directory.TrustBundle),
                static async etcd =>
                {
                    var ca = await SharedStore.CaAsync(etcd);
                    return TrustBundle.Create(ca.TrustDomain, [System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(ca.RootPem)]);
                });
            // Parse before printing: a damaged bundle is an error, not output.
            Console.Write(bundle.ToPem());
        }));
        return new Command("bundle", "the mesh trust bundle") { show };
    }
}
