using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Spiffe;

namespace MeshGuard.Ctl.Commands;

/// <summary>
/// <c>meshctl identity revoke | unrevoke | revoked</c>: the control plane's revocation list. A running control
/// plane picks a change up within a second and sends it to every sidecar, which refuses the identity and
/// closes its open connections; the control plane stops renewing its SVIDs and admitting its join tokens.
/// </summary>
internal static class IdentityCommand
{
    public static Command Create()
    {
        var data = CliOption.Text("--data", "control-plane data directory");
        var store = SharedStore.Option();
        var spiffeId = CliOption.Text("--spiffe-id", "the identity, spiffe://<td>/ns/<ns>/sa/<sa>");
        var revoke = new Command("revoke", "revoke an identity: the mesh refuses its SVIDs and closes its connections") { data, store, spiffeId };
        revoke.SetAction(parse => Cli.RunAsync(() => UpdateAsync(parse, data, store, spiffeId, revoke: true)));
        var unrevoke = new Command("unrevoke", "take an identity off the revocation list") { data, store, spiffeId };
        unrevoke.SetAction(parse => Cli.RunAsync(() => UpdateAsync(parse, data, store, spiffeId, revoke: false)));
        var list = new Command("revoked", "print the revocation list") { data, store };
        list.SetAction(parse => Cli.RunAsync(async () =>
        {
            var revoked = await SharedStore.FromEitherAsync(parse, store, data,
                static directory => RevocationList.Load(directory.Revocations, out var error) is var list && error is null ? list : throw new InvalidOperationException(error),
                static etcd => MeshGuard.Etcd.EtcdRevocations.ReadAsync(etcd, CancellationToken.None));
            foreach (var id in revoked.Ids)
            {
                Console.WriteLine(id);
            }
        }));
        return new Command("identity", "workload identities: revocation") { revoke, unrevoke, list };
    }

    private static async Task UpdateAsync(ParseResult parse, Option<string?> data, Option<string?> store, Option<string?> spiffeId, bool revoke)
    {
        var text = CliOption.Required(parse, spiffeId);
        if (!SpiffeId.TryParseWorkload(text, out var id, out var error))
        {
            throw new CliUsageException($"--spiffe-id '{text}': {error}");
        }
        try
        {
            var list = await SharedStore.FromEitherAsync(parse, store, data,
                directory => RevocationList.Update(directory.Revocations, id, revoke),
                etcd => MeshGuard.Etcd.EtcdRevocations.UpdateAsync(etcd, id, revoke, CancellationToken.None));
            Console.WriteLine($"{(revoke ? "revoked" : "unrevoked")} {id} ({list.Ids.Count} identities on the revocation list)");
        }
        catch (InvalidDataException e)
        {
            throw new InvalidOperationException(e.Message);
        }
    }
}
