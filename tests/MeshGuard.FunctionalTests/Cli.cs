using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>Runs one of the published executables to completion and returns its exit code and output.</summary>
internal static class Cli
{
    public static Task<(int ExitCode, string Output)> RunAsync(string executable, params string[] arguments) =>
        ExternalProcess.RunAsync(MeshBinaries.Of(executable), arguments);
}
