using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.ControlPlane.Common.DataDir;
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
            var text = CliOption.Required(parse, spiffeId);
            if (!SpiffeId.TryParseWorkload(text, out var id, out var error))
            {
                throw new CliUsageException($"--spiffe-id '{text}': {error}");
            }
            var lifetime = parse.GetValue(ttl);
            Console.WriteLine(await SharedStore.FromEitherAsync(parse, store, data,
                directory => new JoinTokenStore(directory.Root, TimeProvider.System).Create(InTrustDomainOf(id, TrustBundle.Load(directory.TrustBundle).TrustDomain), lifetime),
                async etcd => await new MeshGuard.Etcd.EtcdJoinTokens(etcd, TimeProvider.System)
                    .CreateAsync(InTrustDomainOf(id, (await SharedStore.CaAsync(etcd)).TrustDomain), lifetime, CancellationToken.None)));
        }));
        return new Command("token", "join tokens for sidecars") { create };
    }

    private static SpiffeId InTrustDomainOf(SpiffeId id, string trustDomain) => id.TrustDomain == trustDomain
        ? id
        : throw new CliUsageException($"--spiffe-id is in trust domain '{id.TrustDomain}' but this control plane serves '{trustDomain}'");
}
