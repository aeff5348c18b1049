using System.Diagnostics;

namespace MeshGuard.FunctionalTests;

/// <summary>openssl s_client as a real, independent TLS peer: writes a request, returns everything it printed.</summary>
internal static class SClient
{
    public static async Task<string> RunAsync(string[] arguments, string request)
    {
        var start = new ProcessStartInfo("openssl")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("s_client");
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(request);
        await process.StandardInput.FlushAsync();
        // Give the server time to answer (or to send its alert) before closing our side.
        await Task.Delay(1500);
        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
        }
        return await stdout + await stderr;
    }
}
