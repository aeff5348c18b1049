namespace MeshGuard.Tests.Common;

/// <summary>Runs the real openssl binary and returns its exit code and output.</summary>
public static class OpenSsl
{
    public static (int ExitCode, string Output) Run(params string[] arguments) =>
        ExternalProcess.RunAsync("openssl", arguments, timeout: TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();

    /// <summary>openssl s_client as an independent TLS peer: sends <paramref name="request"/>, waits for the answer, returns all it printed.</summary>
    public static async Task<string> SClientAsync(string[] arguments, string request)
    {
        var (_, output) = await ExternalProcess.RunAsync("openssl", ["s_client", .. arguments], request, holdInput: TimeSpan.FromMilliseconds(1500), timeout: TimeSpan.FromSeconds(15));
        return output;
    }
}
