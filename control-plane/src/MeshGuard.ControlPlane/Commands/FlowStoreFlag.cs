using MeshGuard.CommandLine;
using MeshGuard.FlowStore;

namespace MeshGuard.ControlPlane.Commands;

/// <summary>The <c>--flow-store</c> flag: empty is the data directory's flows/.</summary>
internal static class FlowStoreFlag
{
    public static FlowStoreLocation? Parse(string? text) =>
        string.IsNullOrEmpty(text) ? null : FlowStoreLocation.Parse(text, out var error) ?? throw new CliUsageException("--flow-store " + error);
}
