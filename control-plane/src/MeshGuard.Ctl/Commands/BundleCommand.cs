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
        var store = SharedStore.Option();
        var show = new Command("show", "print the trust bundle (PEM)") { data, store };
        show.SetAction(parse => Cli.RunAsync(async () =>
        {
            using var etcd = SharedStore.Open(parse, store, data);
            TrustBundle bundle;
            if (etcd is null)
            {
                var directory = new DataDirectory(CliOption.Required(parse, data));
                directory.RequireExists();
                bundle = TrustBundle.Load(directory.TrustBundle);
            }
            else
            {
                var ca = await SharedStore.CaAsync(etcd);
                bundle = TrustBundle.Create(ca.TrustDomain, [System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(ca.RootPem)]);
            }
            // Parse before printing: a damaged bundle is an error, not output.
            Console.Write(bundle.ToPem());
        }));
        return new Command("bundle", "the mesh trust bundle") { show };
    }
}
