using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace MeshGuard.Tests.Common;

/// <summary>
/// A server program a test starts (python3-grpcio, redis-server, …): started, waited on until it prints the
/// line that says it is ready, and ended by its own process id when the test is done.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ServerProcess(Process process) => _process = process;

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The first group of the ready line's match (a port, for servers that pick their own).</summary>
    public string ReadyValue { get; private set; } = "";

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static async Task<ServerProcess> StartAsync(string fileName, IEnumerable<string> arguments, string readyPattern, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment.Remove("HTTP_PROXY");
        start.Environment.Remove("http_proxy");
        var process = new Process { StartInfo = start };
        var server = new ServerProcess(process);
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var pattern = new Regex(readyPattern, RegexOptions.CultureInvariant);
        DataReceivedEventHandler onLine = (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }
            lock (server._output)
            {
                server._output.AppendLine(e.Data);
            }
            if (pattern.Match(e.Data) is { Success: true } match)
            {
                ready.TrySetResult(match.Groups.Count > 1 ? match.Groups[1].Value : match.Value);
            }
        };
        process.OutputDataReceived += onLine;
        process.ErrorDataReceived += onLine;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var limit = Task.Delay(timeout ?? TimeSpan.FromSeconds(30));
        var exited = process.WaitForExitAsync();
        var first = await Task.WhenAny(ready.Task, limit, exited);
        if (first != ready.Task)
        {
            await server.DisposeAsync();
            throw new InvalidOperationException($"{fileName} did not become ready ({(first == exited ? "exited" : "timed out")}):\n{server.Output}");
        }
        server.ReadyValue = await ready.Task;
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await _process.WaitForExitAsync(wait.Token);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException)
        {
        }
        _process.Dispose();
    }
}
