using System.CommandLine;
using MeshGuard.CommandLine;
using MeshGuard.ControlPlane.Common.DataDir;

namespace MeshGuard.Ctl.Commands;

/// <summary>
/// <c>meshctl console url --data DIR</c>: a URL that logs the reviewer into the control plane's console once,
/// within a minute (<see cref="ConsoleLogins"/>). Whoever can read the data directory can run it: the same
/// people who hold the CA.
/// </summary>
internal static class ConsoleCommand
{
    public static Command Create()
    {
        var data = CliOption.Text("--data", "control-plane data directory");
        var url = new Command("url", "print a one-time URL (valid for a minute) that logs into the console on the control plane's admin port") { data };
        url.SetAction(parse => Cli.Run(() =>
        {
            var directory = new DataDirectory(CliOption.Required(parse, data));
            directory.RequireExists();
            if (!File.Exists(directory.AdminAddressFile))
            {
                throw new InvalidOperationException($"{directory.AdminAddressFile} does not exist: is meshguard-cp running with --data {directory.Root}?");
            }
            var admin = File.ReadAllText(directory.AdminAddressFile).Trim();
            var token = new ConsoleLogins(directory, TimeProvider.System).Create();
            Console.WriteLine($"http://{admin}/console/login?token={token}");
        }));
        return new Command("console", "the security reviewer's console") { url };
    }
}
