using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MeshGuard.Ctl.Demo;

/// <summary>
/// One MeshGuard process (control plane, sidecar or sample app) started by the demo or a test, with its
/// output in a log file. Stopped with SIGTERM so it shuts down gracefully; killed only if it will not.
/// </summary>
public sealed partial class MeshProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;

    private MeshProcess(string name, Process process, StreamWriter log, string logPath)
    {
        Name = name;
        _process = process;
        _log = log;
        LogPath = logPath;
    }

    public string Name { get; }

    public string LogPath { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Where the MeshGuard executables are: MESHGUARD_BIN, else beside this program.</summary>
    public static string BinDirectory =>
        Environment.GetEnvironmentVariable("MESHGUARD_BIN") is { Length: > 0 } bin ? bin : AppContext.BaseDirectory;

    /// <param name="launcher">A program and its arguments that run the executable (e.g. "ip netns exec NS"); it must exec, so the id stays the executable's.</param>
    public static MeshProcess Start(
        string name, string executable, IEnumerable<string> arguments, string logPath, IDictionary<string, string>? environment = null, IReadOnlyList<string>? launcher = null)
    {
        var start = CreateStartInfo(executable);
        if (launcher is { Count: > 0 })
        {
            var launched = new ProcessStartInfo(launcher[0]);
            foreach (var argument in launcher.Skip(1).Append(start.FileName).Concat(start.ArgumentList))
            {
                launched.ArgumentList.Add(argument);
            }
            start = launched;
        }
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.RedirectStandardInput = false;
        start.UseShellExecute = false;
        // Children must not inherit a proxy setting meant for someone else.
        start.Environment.Remove("HTTP_PROXY");
        start.Environment.Remove("http_proxy");
        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                start.Environment[key] = value;
            }
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(logPath))!);
        var log = new StreamWriter(logPath, append: true) { AutoFlush = true };
        var process = new Process { StartInfo = start };
        var gate = new Lock();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (gate) { log.WriteLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (gate) { log.WriteLine(e.Data); } } };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new MeshProcess(name, process, log, logPath);
    }

    /// <summary>Runs a MeshGuard executable: the published single-file binary, or the framework-dependent dll.</summary>
    private static ProcessStartInfo CreateStartInfo(string executable)
    {
        var native = Path.Combine(BinDirectory, executable);
        if (File.Exists(native))
        {
            return new ProcessStartInfo(native);
        }
        var dll = native + ".dll";
        if (File.Exists(dll))
        {
            var start = new ProcessStartInfo("dotnet");
            start.ArgumentList.Add(dll);
            return start;
        }
        throw new FileNotFoundException($"{executable} not found in {BinDirectory}: run ./meshguard.sh build (or set MESHGUARD_BIN)");
    }

    public string ReadLog()
    {
        try
        {
            if (_process.HasExited)
            {
                // The process's output reaches its log through events that can trail its exit: waiting without a
                // timeout also waits for the output to end, so a log read after the exit holds its last words.
                _process.WaitForExit();
            }
        }
        catch (InvalidOperationException)
        {
            // Disposed already: its output ended before that.
        }
        try
        {
            using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>SIGTERM, then wait; SIGKILL after <paramref name="grace"/>.</summary>
    public async Task<bool> StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return true;
        }
        _ = Kill(_process.Id, SigTerm);
        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
            return false;
        }
    }

    /// <summary>Ends the process at once (SIGKILL) if it still runs.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(10));
        _process.Dispose();
        await _log.DisposeAsync();
    }

    private const int SigTerm = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
