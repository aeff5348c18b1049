namespace MeshGuard.Tests.Common;

/// <summary>The checkout the tests run from: the folder above the test assembly that holds MeshGuard.sln.</summary>
public static class RepositoryRoot
{
    public static string Path { get; } = Find();

    private static string Find()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(directory.FullName, "MeshGuard.sln")))
            {
                return directory.FullName;
            }
        }
        throw new DirectoryNotFoundException("MeshGuard.sln not found above " + AppContext.BaseDirectory);
    }
}
