using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Ca;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.SharedState;

namespace MeshGuard.ControlPlane.Commands;

/// <summary>
/// meshguard-cp init --data DIR [--store etcd:URL]: the CA (root and intermediate, keys 0600) and bundle, made once,
/// for a cluster's Secret; with --store, that CA (an existing one too) is put into etcd, its keys sealed.
/// </summary>
internal static class InitCommand
{
    public static Command Create()
    {
        var dataOption = CliOption.Text("--data", "directory to create the CA in (DIR/ca) and write the bundle (DIR/bundle.pem)");
        var trustDomainOption = CliOption.Text("--trust-domain", "SPIFFE trust domain", "mesh.local");
        var storeOption = CliOption.Text("--store", "also put the CA into this etcd (etcd:http://HOST:2379[,more]) for replicas started with --store");
        var storeKeyOption = CliOption.Text("--store-key-file", "with --store: the 0600 file of the key that seals the CA's keys; default: the variable " + MeshGuard.Etcd.StoreKey.EnvironmentVariable);
        var command = new Command("init", "make the mesh CA and bundle and exit (for the meshguard-ca Secret of a cluster install, or an etcd store)") { dataOption, trustDomainOption, storeOption, storeKeyOption };
        command.SetAction(async (parse, cancellation) =>
        {
            try
            {
                var directory = new DataDirectory(Path.GetFullPath(CliOption.Required(parse, dataOption)));
                var existed = Directory.Exists(directory.CaDirectory);
                Directory.CreateDirectory(directory.Root);
                var ca = CertificateAuthority.LoadOrCreate(directory, parse.GetValue(trustDomainOption)!, TimeProvider.System);
                SecureFile.WriteAtomically(directory.TrustBundle, ca.Bundle.ToPem(), secret: false);
                Console.WriteLine($"{(existed ? "kept the existing CA" : "made a CA")} for trust domain {ca.TrustDomain} in {directory.CaDirectory}; bundle {directory.TrustBundle}");
                if (StoreFlag.Parse(parse.GetValue(storeOption)) is { } location)
                {
                    using var etcd = new MeshGuard.Etcd.EtcdConnection(location);
                    using var key = MeshGuard.Etcd.StoreKey.Load(parse.GetValue(storeKeyOption) is { Length: > 0 } file ? Path.GetFullPath(file) : null);
                    var material = CertificateAuthority.ReadMaterial(directory);
                    if (await EtcdCertificateAuthority.UploadAsync(etcd, key, material, ca.TrustDomain, cancellation))
                    {
                        Console.WriteLine($"put the CA into {location} {MeshGuard.Etcd.EtcdKeys.Ca}, its keys sealed");
                    }
                    else if ((await MeshGuard.Etcd.CaDocument.ReadAsync(etcd, cancellation))?.RootPem.Trim() == material.RootPem.Trim())
                    {
                        Console.WriteLine($"{location} holds this CA already");
                    }
                    else
                    {
                        throw new InvalidOperationException($"{location} holds another CA; replicas take theirs from there. Remove {MeshGuard.Etcd.EtcdKeys.Ca} first to replace it");
                    }
                }
                return 0;
            }
            catch (Exception e) when (e is CliUsageException or InsecureFileException or InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync($"meshguard-cp init: {e.Message}");
                return e is CliUsageException ? 2 : 1;
            }
        });
        return command;
    }
}
