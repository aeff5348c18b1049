using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.FlowStore;

namespace MeshGuard.Ctl.Commands;

/// <summary>
/// <c>--flow-store postgres://...</c>: the commands that read flow records read them from the store every control-plane
/// replica writes, in place of log directories. meshctl only reads it, so an account that may only SELECT will do.
/// </summary>
internal static class SharedFlowStore
{
    public static Option<string?> Option() =>
        CliOption.Text("--flow-store", "the shared flow store: postgres://USER:PASSWORD@HOST:PORT/DATABASE (as meshguard-cp --flow-store)");

    /// <summary>The store if one was named, else null.</summary>
    public static StoredFlowLogs? Open(ParseResult parse, Option<string?> option) =>
        parse.GetValue(option) is { Length: > 0 } text
            ? StoredFlowLogs.Open(FlowStoreLocation.Parse(text, out var error) ?? throw new CliUsageException("--flow-store " + error))
            : null;
}
