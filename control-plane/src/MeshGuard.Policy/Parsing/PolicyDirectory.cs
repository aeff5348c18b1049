using MeshGuard.Policy.Model;

namespace MeshGuard.Policy.Parsing;

/// <summary>
/// Reads every <c>*.yaml</c>/<c>*.yml</c> file under a directory (recursively) or one file. A file with a
/// mistake is refused whole; a policy name already taken by another file (in path order) is a mistake of
/// the later file.
/// </summary>
public static class PolicyDirectory
{
    public static IReadOnlyList<PolicyFileResult> Load(string path)
    {
        if (File.Exists(path))
        {
            return [LoadFile(path)];
        }
        if (!Directory.Exists(path))
        {
            throw new DirectoryNotFoundException($"{path}: no such file or directory");
        }
        var files = Directory.EnumerateFiles(path, "*.*", SearchOption.AllDirectories)
            .Where(static f => f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".yml", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();
        return CheckNamesAcrossFiles(files.ConvertAll(LoadFile));
    }

    public static PolicyFileResult LoadFile(string file)
    {
        string text;
        try
        {
            var info = new FileInfo(file);
            if (info.Length > PolicyParser.MaxFileBytes)
            {
                return new PolicyFileResult(file, [], [new PolicyError(file, 1, 1, $"file is larger than {PolicyParser.MaxFileBytes} bytes")]);
            }
            text = File.ReadAllText(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new PolicyFileResult(file, [], [new PolicyError(file, 1, 1, $"cannot read: {e.Message}")]);
        }
        return PolicyParser.Parse(text, file);
    }

    /// <summary>Refuses a later file that reuses a policy name an earlier valid file holds.</summary>
    public static IReadOnlyList<PolicyFileResult> CheckNamesAcrossFiles(IReadOnlyList<PolicyFileResult> results)
    {
        var owners = new Dictionary<string, string>(StringComparer.Ordinal);
        var checkedResults = new List<PolicyFileResult>(results.Count);
        foreach (var result in results)
        {
            var errors = new List<PolicyError>();
            foreach (var policy in result.Policies)
            {
                if (owners.TryGetValue(policy.Id, out var owner))
                {
                    errors.Add(new PolicyError(result.File, policy.Location?.Line ?? 1, policy.Location?.Column ?? 1,
                        $"duplicate policy name '{policy.Id}': already defined in {owner}"));
                }
            }
            if (errors.Count > 0)
            {
                checkedResults.Add(new PolicyFileResult(result.File, [], errors));
                continue;
            }
            foreach (var policy in result.Policies)
            {
                owners[policy.Id] = result.File;
            }
            checkedResults.Add(result);
        }
        return checkedResults;
    }

    public static IReadOnlyList<AccessPolicy> ValidPolicies(IEnumerable<PolicyFileResult> results)
    {
        var policies = new List<AccessPolicy>();
        foreach (var result in results)
        {
            policies.AddRange(result.Policies);
        }
        return policies;
    }
}
