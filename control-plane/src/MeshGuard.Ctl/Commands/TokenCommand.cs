using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.Contracts.DataDir;
using MeshGuard.Spiffe;

namespace MeshGuard.Ctl.Commands;

/// <summary><c>meshctl token create</c>: a one-time join token bound to one SPIFFE ID.</summary>
internal static class TokenCommand
{
    public static Command Create()
    {
        var data = CliOption.Text("--data", "control-plane data directory");
        var store = SharedStore.Option();
        var spiffeId = CliOption.Text("--spiffe-id", "the identity the token admits, spiffe://<td>/ns/<ns>/sa/<sa>");
        var ttl = CliOption.Duration("--ttl", "how long the token stays usable", TimeSpan.FromMinutes(10));
        var create = new Command("create", "print a one-time join token for one SPIFFE ID") { data, store, spiffeId, ttl };
        create.SetAction(parse => Cli.RunAsync(async () =>
        {
            using var etcd = SharedStore.Open(parse, store, data);
            var text = CliOption.Required(parse, spiffeId);
            if (!SpiffeId.TryParse(text, out var id, out var error))
            {
                throw new CliUsageException($"--spiffe-id '{text}': {error}");
            }
            IJoinTokens tokens;
            string trustDomain;
            if (etcd is null)
            {
                var directory = new DataDirectory(CliOption.Required(parse, data));
                directory.RequireExists();
                trustDomain = TrustBundle.Load(directory.TrustBundle).TrustDomain;
                tokens = new JoinTokenStore(directory.Root, TimeProvider.System);
            }
            else
            {
                trustDomain = (await SharedStore.CaAsync(etcd)).TrustDomain;
                tokens = new MeshGuard.Store.EtcdJoinTokens(etcd, TimeProvider.System);
            }
            if (id.TrustDomain != trustDomain)
            {
                throw new CliUsageException($"--spiffe-id is in trust domain '{id.TrustDomain}' but this control plane serves '{trustDomain}'");
            }
            Console.WriteLine(await tokens.CreateAsync(id, parse.GetValue(ttl), CancellationToken.None));
        }));
        return new Command("token", "join tokens for sidecars") { create };
    }
}
