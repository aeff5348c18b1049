using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Parsing;

namespace MeshGuard.Ctl.Commands;

/// <summary>Loads the policy set a meshctl question is asked against.</summary>
internal static class PolicySets
{
    /// <summary>What is deployed (<c>--data</c> or <c>--store</c>) or a proposed set of files (<c>--policies</c>); exactly one of the two.</summary>
    public static async Task<(PolicySet Set, string Source)> LoadAsync(
        ParseResult parse, Option<string?> data, Option<string?> store, Option<string?> proposed, string? defaultPolicy)
    {
        var policies = parse.GetValue(proposed);
        if (DeployedPolicies.Named(parse, data, store) == (policies is not null))
        {
            throw new CliUsageException("give either --data DIR or --store etcd:URL (what is deployed), or --policies DIR (a proposed set)");
        }
        return policies is null ? await DeployedAsync(parse, data, store, defaultPolicy) : Proposed(policies, defaultPolicy);
    }

    /// <summary>What is deployed, with the deployed mesh default unless <paramref name="defaultPolicy"/> overrides it.</summary>
    public static async Task<(PolicySet Set, string Source)> DeployedAsync(ParseResult parse, Option<string?> data, Option<string?> store, string? defaultPolicy)
    {
        var (state, inForce) = await DeployedPolicies.LoadAsync(parse, data, store);
        return (new PolicySet(inForce, ParseDefault(defaultPolicy ?? state.MeshDefault)), $"deployed, version {state.Version}");
    }

    /// <summary>A proposed set of files, which must validate, with <paramref name="defaultPolicy"/> (else deny).</summary>
    public static (PolicySet Set, string Source) Proposed(string policies, string? defaultPolicy)
    {
        IReadOnlyList<PolicyFileResult> results;
        try
        {
            results = PolicyDirectory.Load(policies);
        }
        catch (DirectoryNotFoundException e)
        {
            throw new CliUsageException(e.Message);
        }
        var errors = results.SelectMany(static r => r.Errors).ToList();
        if (errors.Count > 0)
        {
            // A proposed set with a mistake is bad input: the answer would not be what ships.
            throw new CliUsageException("the proposed policies do not validate:\n" + string.Join("\n", errors));
        }
        return (new PolicySet(PolicyDirectory.ValidPolicies(results), ParseDefault(defaultPolicy ?? "deny")), $"proposed, from {policies}");
    }

    private static MeshDefault ParseDefault(string text) =>
        MeshDefaults.TryParse(text, out var parsed)
            ? parsed
            : throw new CliUsageException($"--default-policy '{text}' must be deny, allow-authenticated or allow");
}
