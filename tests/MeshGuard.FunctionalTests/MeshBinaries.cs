namespace MeshGuard.FunctionalTests;

/// <summary>
/// Points the process launcher at the published executables: MESHGUARD_BIN if set (./meshguard.sh test sets
/// it), else out/bin of the repository this test runs from.
/// </summary>
internal static class MeshBinaries
{
    public static string Directory { get; } = Resolve();

    private static string Resolve()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("MESHGUARD_BIN");
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            return fromEnvironment;
        }
        var bin = Path.Combine(MeshGuard.Tests.Common.RepositoryRoot.Path, "out", "bin");
        Environment.SetEnvironmentVariable("MESHGUARD_BIN", bin);
        return bin;
    }

    public static string Of(string executable) => Path.Combine(Directory, executable);

    public static void Ensure()
    {
        if (!File.Exists(Of("meshguard-proxy")))
        {
            throw new InvalidOperationException($"meshguard-proxy not found in {Directory}: run ./meshguard.sh build first");
        }
    }
}
