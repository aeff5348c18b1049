using MeshGuard.CommandLine;

namespace MeshGuard.ControlPlane.Commands;

/// <summary>The <c>--store</c> flag of the serving command and of <c>init</c>: empty is the data directory alone.</summary>
internal static class StoreFlag
{
    public static MeshGuard.Etcd.StoreLocation? Parse(string? text) =>
        string.IsNullOrEmpty(text) ? null : MeshGuard.Etcd.StoreLocation.Parse(text, out var error) ?? throw new CliUsageException("--store " + error);
}
