using MeshGuard.CommandLine;
using MeshGuard.Contracts.DataDir;
using MeshGuard.Policy.Engine;
using MeshGuard.Policy.Model;
using MeshGuard.Policy.Parsing;

namespace MeshGuard.Ctl.Commands;

/// <summary>Loads the policy set a meshctl question is asked against.</summary>
internal static class PolicySets
{
    /// <summary>What is deployed (<c>--data</c>) or a proposed set of files (<c>--policies</c>); exactly one of the two.</summary>
    public static (PolicySet Set, string Source) Load(string? data, string? policies, string? defaultPolicy)
    {
        if ((data is null) == (policies is null))
        {
            throw new CliUsageException("give either --data DIR (what is deployed) or --policies DIR (a proposed set)");
        }
        MeshDefault? explicitDefault = null;
        if (defaultPolicy is not null)
        {
            explicitDefault = MeshDefaults.TryParse(defaultPolicy, out var parsed)
                ? parsed
                : throw new CliUsageException($"--default-policy '{defaultPolicy}' must be deny, allow-authenticated or allow");
        }
        if (data is not null)
        {
            var directory = new DataDirectory(data);
            PolicyStateDocument state;
            IReadOnlyList<AccessPolicy> inForce;
            try
            {
                directory.RequireExists();
                (state, inForce) = PolicyState.Read(directory);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or FormatException)
            {
                throw new CliUsageException(e.Message);
            }
            var deployedDefault = MeshDefaults.TryParse(state.MeshDefault, out var d) ? d : MeshDefault.Deny;
            return (new PolicySet(inForce, explicitDefault ?? deployedDefault), $"deployed, version {state.Version}");
        }
        IReadOnlyList<PolicyFileResult> results;
        try
        {
            results = PolicyDirectory.Load(policies!);
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
        return (new PolicySet(PolicyDirectory.ValidPolicies(results), explicitDefault ?? MeshDefault.Deny), $"proposed, from {policies}");
    }
}
