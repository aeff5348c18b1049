using MeshGuard.CommandLine;

namespace MeshGuard.Ctl;

/// <summary>Runs a command body: an expected failure is one line on stderr and a non-zero exit, never a stack trace.</summary>
internal static class Cli
{
    public static int Run(Action body) => RunAsync(() =>
    {
        body();
        return Task.CompletedTask;
    }).GetAwaiter().GetResult();

    public static async Task<int> RunAsync(Func<Task> body)
    {
        try
        {
            await body();
            return 0;
        }
        catch (Commands.DeniedException)
        {
            return 1;
        }
        catch (Commands.PolicyLintFailedException)
        {
            return 1;
        }
        catch (Commands.VerifyFailedException)
        {
            return 1;
        }
        catch (Commands.VerifyUnprovenException)
        {
            return 3;
        }
        catch (CliUsageException e)
        {
            await Console.Error.WriteLineAsync($"meshctl: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is FormatException or FileNotFoundException or DirectoryNotFoundException or IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or System.Text.Json.JsonException)
        {
            await Console.Error.WriteLineAsync($"meshctl: {e.Message}");
            return 1;
        }
    }
}
