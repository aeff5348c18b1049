using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.Etcd;
using MeshGuard.Policy.Parsing;

namespace MeshGuard.Ctl.Commands;

/// <summary>
/// <c>meshctl policy apply -f FILE (--data DIR | --store etcd:URL)</c> and <c>meshctl policy delete NAME</c>: for
/// pipelines that push policies. The file is checked as the control plane checks it (parser, and policy names
/// unique across the documents already there) and refused whole, with file:line:column, before anything is
/// written; it is stored under its file name, replacing that document.
/// </summary>
internal static class PolicyApplyCommand
{
    public static Command Apply()
    {
        var file = new Option<string>("-f", "--filename") { Description = "the AccessPolicy file to apply", Required = true };
        var data = CliOption.Text("--data", "control-plane data directory (DIR/policies/NAME)");
        var store = SharedStore.Option();
        var apply = new Command("apply", "check an AccessPolicy file and put it into the control plane's policies, replacing the document of that name") { file, data, store };
        apply.SetAction(parse => Cli.RunAsync(async () =>
        {
            var path = parse.GetValue(file)!;
            var name = DocumentName(Path.GetFileName(path));
            var result = PolicyDirectory.LoadFile(path);
            using var etcd = SharedStore.Open(parse, store, data);
            var target = etcd is null ? Directory(parse, data) : null;
            var others = etcd is null ? OtherFiles(target!, name) : await OtherDocumentsAsync(etcd, name);
            var checkedResult = PolicyDirectory.CheckNamesAcrossFiles([.. others, result])[^1];
            if (!checkedResult.IsValid)
            {
                foreach (var error in checkedResult.Errors)
                {
                    Console.Error.WriteLine(error);
                }
                Console.Error.WriteLine($"{path}: refused, nothing written");
                throw new PolicyLintFailedException();
            }
            var text = await File.ReadAllTextAsync(path);
            string where;
            if (etcd is null)
            {
                where = Path.Combine(target!.PoliciesDirectory, name);
                SecureFile.WriteAtomically(where, text, secret: false);
            }
            else
            {
                var put = await etcd.PutAsync(EtcdKeys.Policy(name), text, CancellationToken.None);
                where = $"{etcd.Location} {EtcdKeys.Policy(name)} at revision {put.Header.Revision}";
            }
            Console.WriteLine($"applied {name}: {result.Policies.Count} policies ({string.Join(", ", result.Policies.Select(static p => p.Id))}) -> {where}");
        }));
        return apply;
    }

    public static Command Delete()
    {
        var nameArgument = new Argument<string>("NAME") { Description = "the document's name, as apply stored it (the file name)" };
        var data = CliOption.Text("--data", "control-plane data directory");
        var store = SharedStore.Option();
        var delete = new Command("delete", "remove a policy document; the policies it held stop being enforced") { nameArgument, data, store };
        delete.SetAction(parse => Cli.RunAsync(async () =>
        {
            var name = DocumentName(parse.GetValue(nameArgument)!);
            using var etcd = SharedStore.Open(parse, store, data);
            bool removed;
            if (etcd is null)
            {
                var file = Path.Combine(Directory(parse, data).PoliciesDirectory, name);
                removed = File.Exists(file);
                File.Delete(file);
            }
            else
            {
                removed = (await etcd.DeleteAsync(EtcdKeys.Policy(name), CancellationToken.None)).Deleted > 0;
            }
            Console.WriteLine(removed ? $"deleted {name}" : $"no policy document {name}; nothing changed");
        }));
        return delete;
    }

    // A document name is a file name: no directories, nothing hidden, YAML.
    private static string DocumentName(string name) =>
        name.Length is > 0 and <= 200 && !name.StartsWith('.') && name.IndexOfAny(['/', '\\', '\0']) < 0 && (name.EndsWith(".yaml", StringComparison.Ordinal) || name.EndsWith(".yml", StringComparison.Ordinal))
            ? name
            : throw new CliUsageException($"'{name}' is not a policy document name: a file name ending in .yaml or .yml");

    private static DataDirectory Directory(ParseResult parse, Option<string?> data)
    {
        var directory = new DataDirectory(CliOption.Required(parse, data));
        directory.RequireExists();
        return directory;
    }

    private static List<PolicyFileResult> OtherFiles(DataDirectory directory, string name) =>
        System.IO.Directory.Exists(directory.PoliciesDirectory)
            ? [.. PolicyDirectory.Load(directory.PoliciesDirectory).Where(r => Path.GetRelativePath(directory.PoliciesDirectory, r.File) != name)]
            : [];

    private static async Task<List<PolicyFileResult>> OtherDocumentsAsync(EtcdConnection etcd, string name) =>
        [.. (await EtcdPolicies.ReadAsync(etcd, CancellationToken.None)).Results.Where(r => r.File != EtcdKeys.Policy(name))];
}
