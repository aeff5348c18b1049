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
        var spiffeId = CliOption.Text("--spiffe-id", "the identity the token admits, spiffe://<td>/ns/<ns>/sa/<sa>");
        var ttl = CliOption.Duration("--ttl", "how long the token stays usable", TimeSpan.FromMinutes(10));
        var create = new Command("create", "print a one-time join token for one SPIFFE ID") { data, spiffeId, ttl };
        create.SetAction(parse => Cli.Run(() =>
        {
            var directory = new DataDirectory(CliOption.Required(parse, data));
            directory.RequireExists();
            var text = CliOption.Required(parse, spiffeId);
            if (!SpiffeId.TryParse(text, out var id, out var error))
            {
                throw new CliUsageException($"--spiffe-id '{text}': {error}");
            }
            var bundle = TrustBundle.Load(directory.TrustBundle);
            if (id.TrustDomain != bundle.TrustDomain)
            {
                throw new CliUsageException($"--spiffe-id is in trust domain '{id.TrustDomain}' but this control plane serves '{bundle.TrustDomain}'");
            }
            var token = new JoinTokenStore(directory.Root, TimeProvider.System).Create(id, parse.GetValue(ttl));
            Console.WriteLine(token);
        }));
        return new Command("token", "join tokens for sidecars") { create };
    }
}
