using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Etcd;
using MeshGuard.Policy.Model;
using MeshGuard.Policy.Parsing;

namespace MeshGuard.Ctl.Commands;

/// <summary>
/// What the control plane enforces: the state file a replica writes into its data directory (<c>--data</c>),
/// or the policy documents of the etcd store the replicas share (<c>--store</c>), read as they read them.
/// </summary>
internal static class DeployedPolicies
{
    public static bool Named(ParseResult parse, Option<string?> data, Option<string?> store) =>
        !string.IsNullOrEmpty(parse.GetValue(data)) || !string.IsNullOrEmpty(parse.GetValue(store));

    public static async Task<(PolicyStateDocument Document, IReadOnlyList<AccessPolicy> InForce)> LoadAsync(ParseResult parse, Option<string?> data, Option<string?> store)
    {
        try
        {
            return await SharedStore.FromEitherAsync(parse, store, data, PolicyState.Read, FromEtcdAsync);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or FormatException)
        {
            throw new CliUsageException(e.Message);
        }
    }

    private static async Task<(PolicyStateDocument Document, IReadOnlyList<AccessPolicy> InForce)> FromEtcdAsync(EtcdConnection etcd)
    {
        var documents = await EtcdPolicies.ReadAsync(etcd, CancellationToken.None);
        var inForce = PolicyDirectory.ValidPolicies(documents.Results);
        var files = documents.Results
            .Select(static r => new PolicyStateFile(r.File, r.IsValid, [.. r.Policies.Select(static p => p.Id)], [.. r.Errors.Select(static e => e.ToString())]))
            .ToList();
        return (PolicyState.Build(documents.Version, documents.MeshDefault ?? "deny", inForce, files, DateTimeOffset.UtcNow), inForce);
    }
}
