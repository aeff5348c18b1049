using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Etcd;

namespace MeshGuard.Ctl.Commands;

/// <summary>
/// <c>--store etcd:URL[,URL]</c>: the commands that change the control plane's state act on etcd, which every
/// replica watches, instead of one data directory.
/// </summary>
internal static class SharedStore
{
    public static Option<string?> Option() =>
        CliOption.Text("--store", "etcd:http://HOST:2379[,more]: the replicas' shared store, in place of --data");

    /// <summary>The etcd store if one was named, else null (the caller then needs --data).</summary>
    public static EtcdConnection? Open(ParseResult parse, Option<string?> store, Option<string?> data)
    {
        var text = parse.GetValue(store);
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }
        if (!string.IsNullOrEmpty(parse.GetValue(data)))
        {
            throw new CliUsageException("give --data or --store, not both");
        }
        return new EtcdConnection(StoreLocation.Parse(text, out var error) ?? throw new CliUsageException("--store " + error));
    }

    /// <summary>
    /// Answers from the data directory (which must exist) or from etcd, whichever the command was given: one
    /// place that opens, checks and closes either.
    /// </summary>
    public static async Task<T> FromEitherAsync<T>(
        ParseResult parse, Option<string?> store, Option<string?> data, Func<DataDirectory, T> fromDirectory, Func<EtcdConnection, Task<T>> fromEtcd)
    {
        using var etcd = Open(parse, store, data);
        if (etcd is not null)
        {
            return await fromEtcd(etcd);
        }
        var directory = new DataDirectory(CliOption.Required(parse, data));
        directory.RequireExists();
        return fromDirectory(directory);
    }

    /// <summary>The CA in etcd (certificates; its keys stay sealed); a store no replica has started on has none yet.</summary>
    public static async Task<CaDocument> CaAsync(EtcdConnection etcd) =>
        await CaDocument.ReadAsync(etcd, CancellationToken.None)
            ?? throw new InvalidOperationException($"{etcd.Location} holds no MeshGuard CA yet: start a control-plane replica with --store first");
}
